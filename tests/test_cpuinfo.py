from __future__ import annotations

from matteconv.cpuinfo import cpu_flags, cpu_kind

AMD = """processor\t: 0
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx fma avx2 bmi2
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx fma avx2 bmi2
"""
SPR = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
"""


def test_cpu_kind_names_model_cores_and_kernel_flags():
    assert cpu_kind(AMD) == "AMD EPYC, 2 cores, avx2 fma (no avx512, no amx)"
    assert cpu_kind(SPR) == ("Intel(R) Xeon(R) Platinum 8488C, 1 cores, avx2 fma avx512f avx512_vnni avx512_bf16 "
                             "amx_tile amx_bf16 amx_int8")
    assert cpu_kind().count(",") >= 2  # this machine: model, cores, flags


def test_cpu_flags_are_the_first_cpus_flags_line():
    assert cpu_flags(AMD) == {"fpu", "sse4_2", "avx", "fma", "avx2", "bmi2"}
    assert cpu_flags("processor : 0\nFeatures : fp asimd sve\n") == {"fp", "asimd", "sve"}  # Arm's name
    assert cpu_flags("processor : 0\n") == set()
