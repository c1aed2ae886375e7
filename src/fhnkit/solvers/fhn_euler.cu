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
// Arithmetic is written as in the CPU kernel (src/fhnkit/solver.py); nvcc contracts
// a*b+c into FMA by default, which changes the last bits of a step, so CPU and GPU
// agree to a tolerance that grows with the number of steps, not bit for bit.

template <typename T>
__device__ __forceinline__ void fhn_step(T &u, T &w, T i_app, T k, T a, T eps, T beta, T gamma, T dt) {
    const T du = k * (u * (u - a) * (T(1) - u) - w + i_app);
    const T dw = eps * (beta * u - gamma * w);
    u += dt * du;
    w += dt * dw;
}

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
