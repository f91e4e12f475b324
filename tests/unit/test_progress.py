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


def test_bars_print_nothing_when_quiet_or_done_within_ten_seconds_off_a_terminal():
    stream = io.StringIO()
    for progress in (Progress(stream=stream), Progress(quiet=True, stream=stream)):
        bar = progress.bar(3, "select", unit="stage")
        bar.update(3)
        bar.close()
    assert stream.getvalue() == ""


class _Clock:
    """Seconds that a test moves forward by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_long_bar_logs_a_line_per_ten_seconds_and_ten_percent_the_rarer():
    stream, clock = io.StringIO(), _Clock()
    bar = Progress(stream=stream, clock=clock, prefix="[1/2] ").bar(20000, "decoding 20000 images at 64px",
                                                                    unit="img")
    for _ in range(100):  # 200 images per second for 100 s: 10% every 10 s
        clock.now += 1
        bar.update(200)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/2] decoding 20000 images at 64px: 2000/20000 (10%), 200 img/s, ~90 s left"
    assert len(lines) == 10 and lines[-1] == ("[1/2] decoding 20000 images at 64px: 20000/20000 (100%), "
                                              "200 img/s, ~0 s left")
    stream, clock = io.StringIO(), _Clock()
    fast = Progress(stream=stream, clock=clock).bar(1000, "epoch 1/3", unit="batch")
    for _ in range(40):  # 10% every second: the 10 s floor rules, and the close line says how long
        clock.now += 1
        fast.update(25)
        fast.set_postfix(loss="0.4312")
    fast.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["epoch 1/3: 250/1000 (25%), 25 batch/s, ~30 s left, loss 0.4312",
                     "epoch 1/3: 500/1000 (50%), 25 batch/s, ~20 s left, loss 0.4312",
                     "epoch 1/3: 750/1000 (75%), 25 batch/s, ~10 s left, loss 0.4312",
                     "epoch 1/3: 1000/1000 (100%), 25 batch/s, ~0 s left, loss 0.4312"]


def test_off_a_terminal_a_slow_bar_logs_once_a_minute_and_its_last_line_on_close():
    lines: list[str] = []
    clock = _Clock()
    bar = Progress(sink=lines.append, clock=clock).bar(1000, "select", unit="stage")
    for _ in range(3):  # one stage every 70 s: 0.1% per line, but never silent for more than a minute
        clock.now += 70
        bar.n += 1
        bar.set_description("[1/4] resnet18: train")
    clock.now += 10
    bar.n += 1
    bar.close()
    assert lines == ["[1/4] resnet18: train: 1/1000 (0%), 70 s/stage, ~19.4 h left",
                     "[1/4] resnet18: train: 2/1000 (0%), 70 s/stage, ~19.4 h left",
                     "[1/4] resnet18: train: 3/1000 (0%), 70 s/stage, ~19.4 h left",
                     "[1/4] resnet18: train: 4/1000 (0%), 55 s/stage, in 3.7 min"]
