/* Hand-written C reference for the FHN explicit-Euler kernel (issue: solvers at the physical limit).
 *
 * The same arithmetic as fhnkit's kernels, written for speed: cells are processed in
 * blocks that stay in L1, each block advanced through all steps with the cell loop
 * vectorised (cells in SIMD lanes), blocks spread over OpenMP threads. Built by
 * fhnkit.inference.solver_bench with gcc -O3 -march=native -fopenmp and called through ctypes,
 * twice: with -ffp-contract=off (the IEEE operations of the exact numba kernel, bit for bit) and
 * with -ffp-contract=fast (gcc fuses the products into FMAs: the plain C Euler a user would write,
 * against which the benchmark's fast numba kernel is timed).
 */
#include <stddef.h>

#define BLOCK 1024

#define DEFINE_KERNEL(NAME, T)                                                                      \
    void NAME(long n, const T *restrict u0, const T *restrict w0, const T *restrict i_app, T k, T a, \
              T eps, T beta, T gamma, T dt, int n_steps, int save_every, int store_initial,         \
              T *restrict out_u, T *restrict out_w) {                                               \
        long n_blocks = (n + BLOCK - 1) / BLOCK;                                                    \
        _Pragma("omp parallel for schedule(static)")                                                \
        for (long b = 0; b < n_blocks; ++b) {                                                       \
            long lo = b * BLOCK, m = (n - lo < BLOCK) ? n - lo : BLOCK;                             \
            T u[BLOCK] __attribute__((aligned(64)));                                                \
            T w[BLOCK] __attribute__((aligned(64)));                                                \
            T c[BLOCK] __attribute__((aligned(64)));                                                \
            for (long j = 0; j < m; ++j) { u[j] = u0[lo + j]; w[j] = w0[lo + j]; c[j] = i_app[lo + j]; } \
            long slot = 0;                                                                          \
            if (store_initial) {                                                                    \
                for (long j = 0; j < m; ++j) { out_u[lo + j] = u[j]; out_w[lo + j] = w[j]; }        \
                slot = 1;                                                                           \
            }                                                                                       \
            for (int s = 1; s <= n_steps; ++s) {                                                    \
                _Pragma("omp simd")                                                                 \
                for (long j = 0; j < m; ++j) {                                                      \
                    T uj = u[j], wj = w[j];                                                         \
                    T du = k * (uj * (uj - a) * ((T)1 - uj) - wj + c[j]);                           \
                    T dw = eps * (beta * uj - gamma * wj);                                          \
                    u[j] = uj + dt * du;                                                            \
                    w[j] = wj + dt * dw;                                                            \
                }                                                                                   \
                if (s % save_every == 0) {                                                          \
                    T *ou = out_u + slot * n + lo, *ow = out_w + slot * n + lo;                     \
                    for (long j = 0; j < m; ++j) { ou[j] = u[j]; ow[j] = w[j]; }                    \
                    ++slot;                                                                         \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }

DEFINE_KERNEL(fhn_euler_ref_f32, float)
DEFINE_KERNEL(fhn_euler_ref_f64, double)
