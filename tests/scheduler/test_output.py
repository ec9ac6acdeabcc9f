import io

import pytest

from scheduler.output import CappedBuffer, ThreadRoutedStream, marker, read_capped, render


def test_small_output_is_kept_whole():
    buffer = CappedBuffer(1024)
    buffer.write("hello\n")
    buffer.write("world\n")
    assert buffer.getvalue() == "hello\nworld\n"


def test_output_over_the_limit_keeps_head_and_tail_with_a_marker():
    buffer = CappedBuffer(1024)
    buffer.write("HEAD" + "x" * 5000)
    for _ in range(100):
        buffer.write("y" * 100)
    buffer.write("TAIL")
    value = buffer.getvalue()
    assert value.startswith("HEAD")
    assert value.endswith("TAIL")
    total = 4 + 5000 + 100 * 100 + 4
    assert marker(total - 1024) in value
    assert len(value.encode()) == 1024 + len(marker(total - 1024).encode())


@pytest.mark.parametrize("size", [1023, 1024, 1025, 4096, 100_000])
def test_thread_and_file_captures_keep_the_same_bytes(tmp_path, size):
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    buffer = CappedBuffer(1024)
    for start in range(0, size, 333):
        buffer.write(text[start : start + 333])
    path = tmp_path / "out"
    path.write_text(text)
    with open(path, "rb") as stream:
        assert buffer.getvalue() == read_capped(stream, 1024)


def test_read_capped_keeps_head_and_tail_of_a_large_file(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"A" * 600 + b"B" * 10_000 + b"C" * 600)
    with open(path, "rb") as stream:
        value = read_capped(stream, 1024)
    assert value.startswith("A" * 512)
    assert value.endswith("C" * 512)
    assert marker(11_200 - 1024) in value


def test_undecodable_bytes_and_nul_are_escaped_not_fatal():
    assert render(b"ok \xff\xfe\x00 end") == "ok \\xff\\xfe\\x00 end"


def test_a_routed_stream_flushed_after_its_original_closed_does_not_fail():
    original = io.StringIO()
    stream = ThreadRoutedStream(original)
    original.close()  # as a test runner's capture is, before the last flush at exit
    stream.flush()
