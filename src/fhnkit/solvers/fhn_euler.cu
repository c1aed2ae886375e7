// Explicit Euler for the FitzHugh-Nagumo model, one thread per cell (SPEC.md sections 1 and 3).
//
//   dU/dt = k (U (U - a)(1 - U) - W + I_app)
//   dW/dt = eps (beta U - gamma W)
//
// Two kernels per precision, with the same parameters (fhnkit.solvers.cuda launches them):
//
// - fhn_euler_f32/_f64, EXACT (data generation): each step is `fhn_step`, the model's right-hand side
//   written as `fhnkit.cell.model.fhn_rhs` (the one definition, which the numba kernels of
//   src/fhnkit/solvers/cpu.py compile): the same IEEE operations in the same order. Compiled without FMA
//   contraction and without flushing float32 subnormals (`compile_options(exact=True)`: --fmad=false
//   -ftz=false) it equals the CPU kernel bit for bit. tests/test_rhs.py builds `fhn_rhs` and `fhn_step`
//   for the host and checks them bit for bit against the Python function.
// - fhn_euler_fast_f32/_f64, FAST (the benchmark): `FastEuler`, the same Euler step with the constants
//   folded once per thread and U's cubic in Horner form: 6 FMA + 1 ADD per step instead of 13 (15 without FMA).
//   Compiled with -ftz=true (float32 subnormals flushed). It differs from the exact step in the last bits
//   of each step (tests/test_cuda_solver.py checks the folding against fhn_rhs and counts the instructions
//   per step of both kernels in the PTX).
//
// Each thread keeps its cell's state in registers for all steps and writes only the requested
// snapshots: snapshot s of cell i goes to out[s * n + i], so a warp's 32 stores are contiguous
// (coalesced). Compiled at run time through CuPy's NVRTC with the names below; `nvcc -c` compiles
// it too, which CI uses to keep it valid.

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
// A plain C++ compiler (the host builds of tests/): no CUDA qualifiers, no kernels.
#include <math.h>
#define __host__
#define __device__
#define __forceinline__ inline
#define FHN_NO_KERNELS
#endif

// Steps per iteration of the unrolled step loop (a compile-time constant; the tests build it with 1).
#ifndef FHN_STEP_UNROLL
#define FHN_STEP_UNROLL 4
#endif

// The FHN right-hand side (dU/dt, dW/dt); keep it identical to fhnkit.cell.model.fhn_rhs.
template <typename T>
__host__ __device__ __forceinline__ void fhn_rhs(T u, T w, T i_app, T k, T a, T eps, T beta, T gamma, T &du,
                                                 T &dw) {
    du = k * (u * (u - a) * (T(1) - u) - w + i_app);
    dw = eps * (beta * u - gamma * w);
}

// One explicit Euler step of size dt, in place.
template <typename T>
__host__ __device__ __forceinline__ void fhn_step(T &u, T &w, T i_app, T k, T a, T eps, T beta, T gamma, T dt) {
    T du, dw;
    fhn_rhs(u, w, i_app, k, a, eps, beta, gamma, du, dw);
    u += dt * du;
    w += dt * dw;
}

// x * y + z rounded once (an FMA whatever the contraction flags).
__host__ __device__ __forceinline__ float fhn_fma(float x, float y, float z) { return fmaf(x, y, z); }
__host__ __device__ __forceinline__ double fhn_fma(double x, double y, double z) { return fma(x, y, z); }

// The exact Euler step with the model's parameters: `fhn_step`, as the CPU kernel does it.
template <typename T>
struct ExactEuler {
    T k, a, eps, beta, gamma, dt;

    __host__ __device__ ExactEuler(T k_, T a_, T eps_, T beta_, T gamma_, T dt_)
        : k(k_), a(a_), eps(eps_), beta(beta_), gamma(gamma_), dt(dt_) {}
    // What a cell's steps need besides its state: its applied current.
    __host__ __device__ __forceinline__ T cell(T i_app) const { return i_app; }
    __host__ __device__ __forceinline__ void step(T &u, T &w, T i_app) const {
        fhn_step(u, w, i_app, k, a, eps, beta, gamma, dt);
    }
};

// The same Euler step, algebraically equal to u + dt * fhn_rhs(...) in exact arithmetic. With h = dt k
// and e = dt eps, the increments are polynomials with the constants folded:
//
//   dt dU/dt = h (U (U - a)(1 - U) - W + I) = h (-U^3 + (1 + a) U^2 - a U - W + I)
//            = ((c3 U + c2) U + c1) U + (cw W + c0)
//              c3 = cw = -h,  c2 = h (1 + a),  c1 = -h a,  c0 = h I (per cell)
//   dt dW/dt = e (beta U - gamma W) = wu U + ww W
//              wu = e beta,  ww = -e gamma
//
//   U' = U + (((c3 U + c2) U + c1) U + (cw W + c0))   4 FMA + 1 ADD
//   W' = (W + ww W) + wu U                            2 FMA
//
// The state is added to its increment, not folded into a coefficient: W' = (1 - e gamma) W + ... would
// round e gamma (~1e-3) to the ~15 bits of it that 1 - e gamma keeps in float32, the same way every step:
// 300 steps drift ~20x more than the exact kernel (1 - h a for U: ~2x); as written, ~1.4x.
// The coefficients are folded once per thread (c0 once per cell), in double and rounded once to T.
// U' and W' both use the state before the step.
template <typename T>
struct FastEuler {
    T c3, c2, c1, wu, ww;
    double h;

    __host__ __device__ FastEuler(T k, T a, T eps, T beta, T gamma, T dt) {
        h = double(dt) * double(k);
        const double e = double(dt) * double(eps);
        c3 = T(-h);
        c2 = T(h * (1.0 + double(a)));
        c1 = T(-h * double(a));
        wu = T(e * double(beta));
        ww = T(-e * double(gamma));
    }
    // c0 = dt k I_app of a cell.
    __host__ __device__ __forceinline__ T cell(T i_app) const { return T(h * double(i_app)); }
    __host__ __device__ __forceinline__ void step(T &u, T &w, T c0) const {
        const T du = fhn_fma(fhn_fma(fhn_fma(c3, u, c2), u, c1), u, fhn_fma(c3, w, c0));  // cw = c3
        w = fhn_fma(wu, u, fhn_fma(ww, w, w));
        u += du;
    }
};

#ifndef FHN_NO_KERNELS
// Every cell of the grid-stride range: the initial state (if asked), then a snapshot after every
// `save_every` steps. Steps after the last snapshot would change nothing stored and are not taken.
template <typename T, typename Euler>
__device__ void fhn_euler(const Euler euler, const T *__restrict__ u0, const T *__restrict__ w0,
                          const T *__restrict__ i_app, long long n, int n_steps, int save_every, int store_initial,
                          T *__restrict__ out_u, T *__restrict__ out_w) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    constexpr int unroll = FHN_STEP_UNROLL;
    const int n_saves = n_steps / save_every;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T u = u0[i], w = w0[i];
        const T cell = euler.cell(i_app[i]);
        T *su = out_u + i, *sw = out_w + i;
        if (store_initial) {
            *su = u;
            *sw = w;
            su += n;
            sw += n;
        }
        for (int s = 0; s < n_saves; ++s) {
#pragma unroll unroll
            for (int j = 0; j < save_every; ++j) euler.step(u, w, cell);
            *su = u;
            *sw = w;
            su += n;
            sw += n;
        }
    }
}

// The kernels fhnkit.solvers.cuda launches (KERNELS, FAST_KERNELS), all with the same parameters.
extern "C" __global__ void fhn_euler_f32(const float *u0, const float *w0, const float *i_app, long long n,
                                         float k, float a, float eps, float beta, float gamma, float dt,
                                         int n_steps, int save_every, int store_initial, float *out_u,
                                         float *out_w) {
    fhn_euler<float>(ExactEuler<float>(k, a, eps, beta, gamma, dt), u0, w0, i_app, n, n_steps, save_every,
                     store_initial, out_u, out_w);
}

extern "C" __global__ void fhn_euler_f64(const double *u0, const double *w0, const double *i_app, long long n,
                                         double k, double a, double eps, double beta, double gamma, double dt,
                                         int n_steps, int save_every, int store_initial, double *out_u,
                                         double *out_w) {
    fhn_euler<double>(ExactEuler<double>(k, a, eps, beta, gamma, dt), u0, w0, i_app, n, n_steps, save_every,
                      store_initial, out_u, out_w);
}

extern "C" __global__ void fhn_euler_fast_f32(const float *u0, const float *w0, const float *i_app, long long n,
                                              float k, float a, float eps, float beta, float gamma, float dt,
                                              int n_steps, int save_every, int store_initial, float *out_u,
                                              float *out_w) {
    fhn_euler<float>(FastEuler<float>(k, a, eps, beta, gamma, dt), u0, w0, i_app, n, n_steps, save_every,
                     store_initial, out_u, out_w);
}

extern "C" __global__ void fhn_euler_fast_f64(const double *u0, const double *w0, const double *i_app,
                                              long long n, double k, double a, double eps, double beta,
                                              double gamma, double dt, int n_steps, int save_every,
                                              int store_initial, double *out_u, double *out_w) {
    fhn_euler<double>(FastEuler<double>(k, a, eps, beta, gamma, dt), u0, w0, i_app, n, n_steps, save_every,
                      store_initial, out_u, out_w);
}

#endif  // FHN_NO_KERNELS
