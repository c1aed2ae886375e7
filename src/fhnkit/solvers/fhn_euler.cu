// Explicit Euler for the FitzHugh-Nagumo model, one thread per cell (SPEC.md sections 1 and 3).
//
//   dU/dt = k (U (U - a)(1 - U) - W + I_app)
//   dW/dt = eps (beta U - gamma W)
//
// Each thread keeps its cell's state in registers for all steps and writes only the
// requested snapshots: snapshot s of cell i goes to out[s * n + i], so a warp's 32
// stores are contiguous (coalesced). Compiled at run time by CuPy (RawModule) with the
// names below; `nvcc -c` compiles it too, which CI uses to keep it valid.
//
// `fhn_rhs` is the model's right-hand side written as `fhnkit.cell.model.fhn_rhs` (the one
// definition, which the numba kernels of src/fhnkit/solvers/cpu.py compile): the same IEEE
// operations in the same order. tests/test_rhs.py builds `fhn_rhs` and `fhn_step` for the
// host and checks them bit for bit against the Python function. nvcc contracts a*b+c into
// FMA by default, which changes the last bits of a step; compiled with --fmad=false
// (`exact`, fhnkit.solvers.cuda.compile_options) the kernel equals the CPU one bit for bit.

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
// A plain C++ compiler (the host build of tests/test_rhs.py): no CUDA qualifiers, no kernels.
#define __host__
#define __device__
#define __forceinline__ inline
#define FHN_NO_KERNELS
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

#ifndef FHN_NO_KERNELS
template <typename T>
__device__ void fhn_euler(const T *__restrict__ u0, const T *__restrict__ w0, const T *__restrict__ i_app,
                          long long n, T k, T a, T eps, T beta, T gamma, T dt, int n_steps, int save_every,
                          int store_initial, T *__restrict__ out_u, T *__restrict__ out_w) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T u = u0[i], w = w0[i];
        const T cur = i_app[i];
        long long slot = 0;
        if (store_initial) {
            out_u[i] = u;
            out_w[i] = w;
            slot = 1;
        }
        int until_save = save_every;
        for (int s = 1; s <= n_steps; ++s) {
            fhn_step(u, w, cur, k, a, eps, beta, gamma, dt);
            if (--until_save == 0) {
                out_u[slot * n + i] = u;
                out_w[slot * n + i] = w;
                ++slot;
                until_save = save_every;
            }
        }
    }
}

extern "C" __global__ void fhn_euler_f32(const float *u0, const float *w0, const float *i_app, long long n,
                                         float k, float a, float eps, float beta, float gamma, float dt,
                                         int n_steps, int save_every, int store_initial, float *out_u,
                                         float *out_w) {
    fhn_euler<float>(u0, w0, i_app, n, k, a, eps, beta, gamma, dt, n_steps, save_every, store_initial, out_u,
                     out_w);
}

extern "C" __global__ void fhn_euler_f64(const double *u0, const double *w0, const double *i_app, long long n,
                                         double k, double a, double eps, double beta, double gamma, double dt,
                                         int n_steps, int save_every, int store_initial, double *out_u,
                                         double *out_w) {
    fhn_euler<double>(u0, w0, i_app, n, k, a, eps, beta, gamma, dt, n_steps, save_every, store_initial, out_u,
                      out_w);
}

#endif  // FHN_NO_KERNELS
