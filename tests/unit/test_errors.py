"""One error rule: library errors name parameters; the CLI names the same ones by their flags,
checked before any work starts, in one line, with the error's exit code and no traceback."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError, TrainingError, UsageError


def test_messages_name_the_parameter_in_python_and_the_flag_on_the_cli():
    exc = UsageError("{param} must be at least 1", param="batch_size")
    assert str(exc) == "batch_size must be at least 1"
    assert exc.render(lambda p: "--" + p.replace("_", "-")) == "--batch-size must be at least 1"
    assert UsageError("plain message").render(lambda p: "never") == "plain message"
    assert (UsageError.exit_code, TrainingError.exit_code, HarnessError.exit_code) == (2, 1, 2)


@pytest.mark.parametrize(("args", "message"), [
    (["select", "--task", "synthetic", "--top-k", "2"], "Error: --top-k keeps the K best of a prescreen, or trains"),
    (["select", "--task", "synthetic", "--then", "standard", "--budget", "full"],
     "Error: --then must be a budget larger than full"),
    (["select", "--task", "synthetic", "--then-epochs", "3"], "Error: --then-epochs sets the larger budget's"),
    (["select", "--task", "synthetic", "--candidates", "nothing*"], "Error: --candidates pattern 'nothing*'"),
    (["finetune", "cifar_convnet_s", "--task", "synthetic", "--alias", "9lives"], "Error: bad --alias '9lives'"),
    (["finetune", "cifar_convnet_s", "--task", "synthetic", "--budget", "quick", "--name", "a b"],
     "Error: bad model --name 'a b'"),
    (["evaluate", "cifar_convnet_s"], "was not trained for a task; pass --task"),
    (["export", "cifar_convnet_s", "--opset", "99999"], "Error: --opset 99999 is not supported"),
])
def test_cli_errors_use_flags_exit_2_and_come_before_work(run_cli, args, message):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
