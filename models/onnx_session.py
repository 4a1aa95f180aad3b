"""One way to open an ONNX Runtime session for the tick: CPU only, few threads, quiet, clear errors.

onnxruntime is imported here, on first use, so importing a model module stays cheap.
"""

from __future__ import annotations

from pathlib import Path


def open_session(path: Path, *, threads: int, error: type[Exception], hint: str):
    """An InferenceSession on `path`; a missing or corrupt file raises `error` naming it, plus `hint`."""
    import onnxruntime as ort

    if not path.is_file():
        raise error(f"model file {path} is missing; {hint}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise error(f"model file {path} cannot be loaded ({exc}); {hint}") from exc
