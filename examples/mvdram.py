"""MVDRAM-style GeMVs in commodity DRAM through the Python API (`ddr4-pud-x4`).

    .venv/bin/python examples/mvdram.py

1. Price the Llama-2-7B output layer (gemv:32000x4096) at 2-bit weights and activations on the PUD
   modules and on the host alone.
2. Compile tiny-llama with every projection on PUD (the host's int8 GEMV path is slowed by an
   override so the mapper prefers the modules), run it, and compare its tokens with the CPU's.
3. Run one small GeMV command by command (RowCopy / MAJ3 / MAJ5) and check it bit for bit.
"""

import numpy as np

import pimc
from pimc.dialects import llm
from pimc.dialects.llm_semantics import quantize_matrix
from pimc.dialects.pud_semantics import emulate_gemv, gemv_bitplanes, weight_fields
from pimc.targets import load_target
from pimc.targets.dram_pud.mechanism import gemv_geometry

for target in ("ddr4-pud-x4", "cpu-i7-9700k"):
    k = pimc.estimate("gemv:32000x4096", target, wbits=2, abits=2, group=128).data["kernel"]
    print(f"gemv:32000x4096 W2A2 on {target}: {k['latency_s'] * 1e3:.3f} ms, {k['energy_j'] * 1e3:.2f} mJ")

prompt = [1, 2, 3, 4, 5, 6, 7, 8]
prog = pimc.compile("tiny-llama", "ddr4-pud-x4", seq_len=8, context=32, wbits=4, abits=8,
                    overrides=["cpu.simd_ops_per_cycle_per_core.int8=0.000001"])
result = prog.run(prompt, tokens=8)
cpu = pimc.compile("tiny-llama", "cpu-i7-9700k", seq_len=8, context=32, wbits=4, abits=8).run(prompt, tokens=8)
print("tokens on PUD:", result.tokens, "same as CPU:", result.tokens == cpu.tokens)
print("commands executed:", result.report.data["simulator"]["pud"])

device = load_target("ddr4-pud-x4").device("pud")
rng = np.random.default_rng(0)
quant = llm.QuantAttr("int3", 32)
fields = weight_fields(quantize_matrix(rng.standard_normal((48, 100)).astype(np.float32), quant), quant)
codes = rng.integers(-127, 128, size=100)
geo = gemv_geometry(device, 48, 100, fields.q, 8, fields.qgroup)
fast, counts = gemv_bitplanes(codes, fields, geo, device.reliable_fraction)
slow = emulate_gemv(codes, fields, geo, device.reliable_fraction)
groups = np.arange(100) // 32
exact = np.stack([fields.u[:, groups == g] @ codes[groups == g] for g in range(4)])
print(f"48x100 GeMV: {counts.ops} row ops; bit-planes == emulator == numpy:",
      np.array_equal(fast, exact) and np.array_equal(slow.partial, exact), slow.task_ops == counts.task_ops)
