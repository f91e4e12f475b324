"""The progress channel: lines, warnings, bars, and what a nested call inherits."""

from __future__ import annotations

import io

from harness.progress import Progress


def test_child_without_lines_keeps_warnings_and_prefixes_its_bars():
    lines: list[str] = []
    parent = Progress(sink=lines.append)
    child = parent.child(lines=False, prefix="[1/4] cifar_convnet_s ")
    child.info("epoch 1/3 loss 0.4")
    child.warn("latency may be wrong")
    parent.info("[1/4] cifar_convnet_s: export")
    assert lines == ["harness: warning: latency may be wrong", "[1/4] cifar_convnet_s: export"]
    assert child.prefix == "[1/4] cifar_convnet_s "
    assert not child.child().lines  # a grandchild cannot turn lines back on
    assert child.child(quiet=True).quiet and not parent.child(quiet=False).quiet


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_bars_carry_the_prefix_and_lines_print_above_them():
    screen = _Terminal()
    progress = Progress(stream=screen)
    outer = progress.bar(8, "select", unit="stage")
    inner = progress.child(lines=False, prefix="[1/4] cifar_convnet_s ").bar(10, "epoch 1/3", unit="batch")
    progress.info("[1/4] cifar_convnet_s: seed 0 accuracy 0.8845")  # while bars are open: tqdm.write
    inner.update(5)
    inner.close()
    outer.close()
    text = screen.getvalue()
    assert "[1/4] cifar_convnet_s epoch 1/3" in text and "select" in text
    assert "[1/4] cifar_convnet_s: seed 0 accuracy 0.8845\n" in text


def test_bars_draw_nothing_off_a_terminal_or_when_quiet():
    stream = io.StringIO()
    for progress in (Progress(stream=stream), Progress(quiet=True, stream=stream)):
        bar = progress.bar(3, "select", unit="stage")
        bar.update(3)
        bar.close()
    assert stream.getvalue() == ""
