"""Reading a weights file safely, and saying in plain words why one cannot be read.

``.safetensors`` files hold tensors only; ``.pth``/``.pt`` files are read with torch's
``weights_only`` loader, which refuses pickled objects instead of running them. When a file fails,
torch's messages name its zip reader's internals ("internal miniz error", ``KeyError: 'data.pkl'``)
or end in advice to load with ``weights_only=False`` (running the file's code), which harness
never does; :func:`unreadable_weights` looks at the file itself instead and names the broken layer.
Zip entries carry CRC-32 checksums that torch does not check, so damaged tensor data would load
silently: :func:`load_state_dict_file` checks them first.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from registry import DataError

if TYPE_CHECKING:
    import torch

RESAVE = "save the weights again (torch.save(model.state_dict(), path) or safetensors.torch.save_file)"


def is_safetensors(path: Path) -> bool:
    """Sniff the safetensors layout: an 8-byte little-endian header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or ``.pth``/``.pt``, never executing pickled code."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise DataError(f"weights file {str(path)!r} is a directory; pass a .safetensors or .pth file")
    if not path.is_file():
        raise DataError(f"weights file {str(path)!r} does not exist; pass an existing .safetensors or .pth file")
    safetensors = path.suffix == ".safetensors" or is_safetensors(path)
    if not safetensors:
        _check_zip_sums(path)
    try:
        if safetensors:
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch's pickle-protocol notice is noise beside our one-line refusal
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # pickle, zip, safetensors' SafetensorError...: the file is bad, not harness
        raise unreadable_weights(path, exc, safetensors) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{str(path)!r} is not a state dict of tensors; {RESAVE}")
    return state


def _check_zip_sums(path: Path) -> None:
    """Refuse a zip-format checkpoint whose entries fail their CRC-32 (torch's reader never checks)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return  # unreadable as a zip: the load that follows fails and is diagnosed
    if bad is not None:
        raise DataError(f"{str(path)!r} is damaged: its entry {bad!r} fails its checksum; {RESAVE}")


def unreadable_weights(path: Path, exc: BaseException, safetensors: bool) -> DataError:
    """Why a weights file could not be read, in harness's words (see the module docstring)."""
    text = str(exc).strip()
    if safetensors:
        reason = text.splitlines()[0].removeprefix("Error while deserializing header: ") if text else type(exc).__name__
        return DataError(f"{str(path)!r} is a malformed .safetensors file ({reason[:120]}): it is truncated, damaged "
                         "or not safetensors; save the weights again (safetensors.torch.save_file)")
    calls, protocol = pickle_trouble(path, text)
    if calls:
        return DataError(f"{str(path)!r} is not a checkpoint of plain tensors (it calls {', '.join(calls)[:120]}): "
                         "it holds pickled objects, which harness never loads (only plain tensors: a pickle can "
                         "run code); save only the tensors (torch.save(model.state_dict(), path) or "
                         "safetensors.torch.save_file)")
    if protocol is not None:
        return DataError(f"{str(path)!r} was saved with pickle protocol {protocol}, which torch's safe loader cannot "
                         "read (it reads protocol 2, torch.save's default); " + RESAVE)
    return DataError(f"{str(path)!r} is not a readable PyTorch checkpoint ({broken_layer(path)}): it is truncated, "
                     f"damaged or another format; {RESAVE}")


def pickle_trouble(path: Path, error: str) -> tuple[list[str], int | None]:
    """Why torch's safe loader refused ``path`` (its ``error`` text), from the file itself: the calls
    its pickle would make, and (when it names none) the pickle protocol above 2 it cannot read, else None.
    Shared by the weights reader and the resume-checkpoint reader, which word it each for their fix."""
    named = re.search(r"GLOBAL ([\w.]+)", error)  # what the pickle would have called
    # torch's loader stops at the first opcode it does not know (protocol 4's FRAME), before naming any call
    unknown_opcode = "Unsupported operand" in error
    calls = [named.group(1)] if named else unsafe_calls(path) if unknown_opcode else []
    protocol = pickle_protocol(path) if unknown_opcode and not calls else None
    return calls, protocol if protocol is not None and protocol > 2 else None


def _head(path: Path, size: int = 4) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


SCAN_LIMIT = 64 * 2**20
"""How much of a pickle is scanned for the calls it would make (a zip's index is a few kB)."""


def _pickle_bytes(path: Path, limit: int = SCAN_LIMIT) -> bytes:
    """The first ``limit`` bytes of the file's pickle stream (its ``data.pkl`` in torch's zip
    format); empty when there is none or it cannot be read."""
    try:
        if _head(path, 2) == b"PK":
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                return archive.open(name).read(limit) if name else b""
        with open(path, "rb") as f:
            return f.read(limit)
    except Exception:  # a broken zip or file: nothing to report
        return b""


def pickle_protocol(path: Path) -> int | None:
    """The protocol of the file's pickle, None if none is seen: a pickle of protocol 2 or later
    starts with PROTO (0x80) and its version."""
    head = _pickle_bytes(path, 2)
    return head[1] if len(head) == 2 and head[0] == 0x80 and head[1] <= 5 else None


def unsafe_calls(path: Path) -> list[str]:
    """The callables the file's pickle names that torch's safe loader does not allow, read from its
    opcodes with :mod:`pickletools` (which parses and never executes); [] when none or unreadable."""
    import pickletools

    try:  # torch's own allow-list, so that its tensor-rebuilding functions are not reported
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError, TypeError):  # a torch without it: claim nothing
        return []
    found: list[str] = []
    strings: list[str | None] = []  # what the recent opcodes pushed, for STACK_GLOBAL's two arguments
    memo: dict[int, str | None] = {}
    try:
        for op, arg, _pos in pickletools.genops(_pickle_bytes(path)):
            if op.name == "GLOBAL" and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2] and strings[-1]:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif op.name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int):
                strings.append(memo.get(arg))
            else:
                strings.append(arg if isinstance(arg, str) else None)
    except Exception:  # damaged or truncated: report what was seen before the damage
        pass
    return list(dict.fromkeys(name for name in found if name not in allowed))


def broken_layer(path: Path) -> str:
    """Which layer of a ``.pth`` file is broken, from the file's own bytes."""
    head = _head(path)
    if not head:
        return "the file is empty"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as archive:
                has_index = any(n.endswith("data.pkl") for n in archive.namelist())
        except Exception:
            return "its zip container is incomplete or damaged"
        return "its pickled index is damaged" if has_index else "a zip container without PyTorch's data.pkl index"
    if head[:1] == b"\x80":
        return "a pickle stream that is damaged or not in PyTorch's format"
    if head == b"\x00" * len(head):
        return "it starts with zero bytes: neither a zip container nor a pickle"
    return "neither a zip container nor a pickle"
