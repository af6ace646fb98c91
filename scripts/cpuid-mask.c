/* cpuid-mask.so, an LD_PRELOAD library (scripts/cpuid_mask.py builds and loads it) for `make bench-avx2` and
   `make test-portable`.

   What: every library in the process sees this CPU with fewer instruction-set extensions, so onnxruntime (MLAS),
   oneDNN, PyTorch's ATen, OpenBLAS and numpy all dispatch the kernels they run on a smaller CPU. The environment
   switches (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, ...) reach some libraries only; MLAS has none. Levels, from
   the environment variable CPUID_MASK_KEEP:
   - `avx2` (default): no AVX-512, AMX, AVX-VNNI or AVX512-BF16: an AVX2 + FMA CPU like the project's AMD EPYC
     machine kind (MLAS: 8-channel NCHWc blocks instead of 16);
   - `avx`: also no AVX2, FMA, BMI1, BMI2 or F16C: a Sandy Bridge-class CPU (MLAS's AVX kernels; OpenVINO, in the
     tests, refuses anything below AVX).

   How: Linux CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0), Linux >= 4.12, where the CPU or hypervisor offers it:
   /proc/cpuinfo flag `cpuid_fault`) makes every CPUID instruction of this thread raise SIGSEGV; threads created
   later inherit the setting, forked children too, and an exec'd child reloads this library from LD_PRELOAD. The
   handler runs the real CPUID with faulting briefly off, clears the feature bits below and steps over the 2-byte
   instruction. Other SIGSEGVs go to the handler the program installed: sigaction() and signal() are interposed
   for SIGSEGV so that this handler stays first (Python's faulthandler, PyTorch's DataLoader workers install one).

   Bits cleared (Intel SDM vol. 2A, CPUID). Level avx2: leaf 7.0 EBX AVX512F/DQ/IFMA/PF/ER/CD/BW/VL
   (16,17,21,26,27,28,30,31), ECX AVX512_VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ (1,6,11,12,14), EDX AVX512_4VNNIW/4FMAPS/
   VP2INTERSECT, AMX-BF16, AVX512_FP16, AMX-TILE, AMX-INT8 (2,3,8,22,23,24,25); leaf 7.1 EAX AVX-VNNI, AVX512_BF16
   (4,5); leaf 0xD.0 EAX the opmask/ZMM and AMX tile state components (5,6,7,17,18). Level avx adds leaf 1 ECX FMA
   (12) and F16C (29), leaf 7.0 EBX BMI1, AVX2, BMI2 (3,5,8).

   Limits: an indication for the smaller CPU, not a measurement of one (same caches, clock and memory as this one).
   glibc picks its string functions before any constructor runs, so memcpy keeps its own choice. If faulting is
   unavailable the library prints one line and exits 3, so no run is mistaken for a masked one. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static struct sigaction chained; /* the program's own SIGSEGV action (SIG_DFL until it installs one) */
static int keep_avx2 = 1;        /* CPUID_MASK_KEEP: avx2 (1) or avx (0) */

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void masked_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    set_cpuid(1);
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) |
                  (1u << 31));
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
        if (!keep_avx2) r[1] &= ~((1u << 3) | (1u << 5) | (1u << 8));
    } else if (leaf == 1) {
        if (!keep_avx2) r[2] &= ~((1u << 12) | (1u << 29));
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~((1u << 4) | (1u << 5));
    } else if (leaf == 0xd && sub == 0) {
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
    }
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)g[REG_RIP];
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) { /* a faulted CPUID */
        uint32_t r[4];
        masked_cpuid((uint32_t)g[REG_RAX], (uint32_t)g[REG_RCX], r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        return;
    }
    if (chained.sa_flags & SA_SIGINFO) {
        chained.sa_sigaction(sig, info, ctx);
    } else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN) {
        chained.sa_handler(sig);
    } else { /* default action: re-raised when the faulting instruction runs again */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
    }
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig != SIGSEGV || real_sigaction == NULL) {
        if (real_sigaction == NULL) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
        return real_sigaction(sig, act, old);
    }
    if (old) *old = chained;
    if (act) chained = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    if (sig != SIGSEGV) {
        sighandler_t (*real_signal)(int, sighandler_t) = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
        return real_signal(sig, handler);
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    return sigaction(sig, &act, &old) == 0 ? old.sa_handler : SIG_ERR;
}

__attribute__((constructor)) static void install(void) {
    const char *keep = getenv("CPUID_MASK_KEEP");
    if (keep && strcmp(keep, "avx") == 0) {
        keep_avx2 = 0;
    } else if (keep && *keep && strcmp(keep, "avx2") != 0) {
        fprintf(stderr, "cpuid-mask: CPUID_MASK_KEEP=%s: expected avx2 or avx\n", keep);
        _exit(3);
    }
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_segv;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    /* whatever was installed before this constructor ran (SIG_DFL as a rule) becomes the chained action */
    if (real_sigaction(SIGSEGV, &act, &chained) != 0 || set_cpuid(0) != 0) {
        fprintf(stderr, "cpuid-mask: CPUID faulting is not available here (arch_prctl ARCH_SET_CPUID: %s); "
                        "cannot hide instruction sets\n", strerror(errno));
        _exit(3);
    }
}
