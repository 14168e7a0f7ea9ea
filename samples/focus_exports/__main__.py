"""Regenerate the bundled sample exports: ``python -m samples.focus_exports``."""

from pathlib import Path

from samples.focus_exports.generate import write_bundled_samples

if __name__ == "__main__":  # pragma: no cover - regenerate the bundled files
    for written in write_bundled_samples(Path(__file__).parent.parent / "data" / "focus_exports"):
        print(written, written.stat().st_size)
