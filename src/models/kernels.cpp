// Fused CPU kernels for the element-wise layers of face backbones. ATen's PReLU backward takes
// several passes over large activations (in bf16, a third of a MobileFaceNet step) and its 2x2
// max-pooling runs at a fraction of the memory bandwidth; these take one vectorised pass each
// way, on fp32 or bf16 activations with fp32 parameters and arithmetic.
#include "models/kernels.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef __SSE2__
#include <immintrin.h>
#endif

namespace arcface {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using bf16 = c10::BFloat16;

// Planes of [N, C, H, W] (or [N, C]) are independent: plane p has channel p % C.
struct Planes {
  int64_t count, channels, size;
  explicit Planes(const at::Tensor& x)
      : count(x.size(0) * x.size(1)),
        channels(x.size(1)),
        size(x.numel() / std::max<int64_t>(1, x.size(0) * x.size(1))) {}
};

// Elements per parallel task: enough work to amortise the task.
int64_t grain(const Planes& p) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.size));
}

// Calls f(T{}) with T the element type of x: float or c10::BFloat16.
template <class F>
decltype(auto) with_element_type(const at::Tensor& x, F f) {
  if (x.scalar_type() == at::kBFloat16) return f(bf16{});
  return f(float{});
}

#ifdef __SSE2__
// The sum of a vector's four lanes, in a fixed order.
float lane_sum(__m128 v) {
  float lanes[4];
  _mm_storeu_ps(lanes, v);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// Four elements as four floats, and back. A bf16 is the upper half of a float.
__m128 load4(const float* p) { return _mm_loadu_ps(p); }
__m128 load4(const bf16* p) {
  const __m128i half = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), half));
}
// positive ? v : k * v per lane: the PReLU select, which keeps NaNs and signed zeros as ATen does.
__m128 slope_where_not(__m128 positive, __m128 v, __m128 k) {
  return _mm_or_ps(_mm_and_ps(positive, v), _mm_andnot_ps(positive, _mm_mul_ps(k, v)));
}

void store4(float* p, __m128 v) { _mm_storeu_ps(p, v); }
void store4(bf16* p, __m128 v) {
  // Rounded to nearest even and NaN kept a NaN, as c10::BFloat16's conversion does.
  const __m128i bits = _mm_castps_si128(v);
  const __m128i odd = _mm_and_si128(_mm_srli_epi32(bits, 16), _mm_set1_epi32(1));
  const __m128i rounded = _mm_add_epi32(bits, _mm_add_epi32(odd, _mm_set1_epi32(0x7fff)));
  const __m128i nan = _mm_castps_si128(_mm_cmpunord_ps(v, v));
  const __m128i out =
      _mm_or_si128(_mm_andnot_si128(nan, rounded), _mm_and_si128(nan, _mm_set1_epi32(0x7fc00000)));
  // The arithmetic shift keeps each upper half within int16, so the signed pack is exact.
  const __m128i high = _mm_srai_epi32(out, 16);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi32(high, high));
}
#endif

template <class T>
void prelu_forward(const T* xs, const float* ws, bool shared, const Planes& p, T* ys) {
  at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const float a = ws[shared ? 0 : plane % p.channels];
      const T* xp = xs + plane * p.size;
      T* yp = ys + plane * p.size;
      int64_t i = 0;
#ifdef __SSE2__
      const __m128 va = _mm_set1_ps(a), zero = _mm_setzero_ps();
      for (; i + 4 <= p.size; i += 4) {
        const __m128 v = load4(xp + i);
        const __m128 positive = _mm_cmpgt_ps(v, zero);
        store4(yp + i, slope_where_not(positive, v, va));
      }
#endif
      for (; i < p.size; ++i) {
        const float v = xp[i];
        yp[i] = v > 0 ? v : a * v;
      }
    }
  });
}

// dx, and per plane the slope's gradient, summed afterwards in a fixed order.
template <class T>
void prelu_backward(const T* xs, const T* gs, const float* ws, bool shared, const Planes& p, T* dxs,
                    double* partial) {
  at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const float a = ws[shared ? 0 : plane % p.channels];
      const T* xp = xs + plane * p.size;
      const T* gp = gs + plane * p.size;
      T* dxp = dxs + plane * p.size;
      float sum = 0;
      int64_t i = 0;
#ifdef __SSE2__
      const __m128 va = _mm_set1_ps(a), zero = _mm_setzero_ps();
      __m128 acc = _mm_setzero_ps();
      for (; i + 4 <= p.size; i += 4) {
        const __m128 v = load4(xp + i), d = load4(gp + i);
        const __m128 positive = _mm_cmpgt_ps(v, zero);
        // dx = x > 0 ? g : a * g;  dw += x > 0 ? 0 : g * x
        store4(dxp + i, slope_where_not(positive, d, va));
        acc = _mm_add_ps(acc, _mm_andnot_ps(positive, _mm_mul_ps(d, v)));
      }
      sum = lane_sum(acc);
#endif
      for (; i < p.size; ++i) {
        const float v = xp[i], d = gp[i];
        const bool positive = v > 0;
        dxp[i] = positive ? d : a * d;
        sum += positive ? 0.0f : d * v;
      }
      partial[plane] = sum;
    }
  });
}

struct PReLUFunction : torch::autograd::Function<PReLUFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& weight) {
    auto x = input.contiguous();
    auto w = weight.contiguous();
    auto y = at::empty_like(x);
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      prelu_forward(x.data_ptr<T>(), w.data_ptr<float>(), w.numel() == 1, Planes(x),
                    y.data_ptr<T>());
    });
    ctx->save_for_backward({x, w});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    auto g = grads[0].to(x.scalar_type()).contiguous();
    auto dx = at::empty_like(x);
    const Planes p(x);
    const bool shared = w.numel() == 1;
    // Per-plane partial sums of the weight gradient, reduced in a fixed order afterwards so
    // the result does not depend on the thread schedule.
    std::vector<double> partial(p.count, 0.0);
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      prelu_backward(x.data_ptr<T>(), g.data_ptr<T>(), w.data_ptr<float>(), shared, p,
                     dx.data_ptr<T>(), partial.data());
    });
    auto dw = at::zeros({w.numel()}, torch::kDouble);
    double* dws = dw.data_ptr<double>();
    for (int64_t plane = 0; plane < p.count; ++plane) {
      dws[shared ? 0 : plane % p.channels] += partial[plane];
    }
    return {dx, dw.to(w.scalar_type()).view(w.sizes())};
  }
};

template <class T>
void max_pool_forward(const T* xs, int64_t planes, int64_t h, int64_t w, T* ys) {
  const int64_t oh = h / 2, ow = w / 2;
  at::parallel_for(
      0, planes, std::max<int64_t>(1, 32768 / (h * w)), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          for (int64_t r = 0; r < oh; ++r) {
            const T* top = xs + plane * h * w + 2 * r * w;
            const T* bottom = top + w;
            T* out = ys + plane * oh * ow + r * ow;
            int64_t col = 0;
#ifdef __SSE2__
            for (; col + 4 <= ow; col += 4) {
              const __m128 m0 = _mm_max_ps(load4(top + 2 * col), load4(bottom + 2 * col));
              const __m128 m1 = _mm_max_ps(load4(top + 2 * col + 4), load4(bottom + 2 * col + 4));
              store4(out + col, _mm_max_ps(_mm_shuffle_ps(m0, m1, _MM_SHUFFLE(2, 0, 2, 0)),
                                           _mm_shuffle_ps(m0, m1, _MM_SHUFFLE(3, 1, 3, 1))));
            }
#endif
            for (; col < ow; ++col) {
              out[col] = std::max(std::max<float>(top[2 * col], top[2 * col + 1]),
                                  std::max<float>(bottom[2 * col], bottom[2 * col + 1]));
            }
          }
        }
      });
}

// The gradient goes to the first input of each window (in row order) that equals the maximum,
// as ATen's indices do; every element of dx is written once.
template <class T>
void max_pool_backward(const T* xs, const T* ys, const T* gs, int64_t planes, int64_t h, int64_t w,
                       T* dxs) {
  const int64_t oh = h / 2, ow = w / 2;
  at::parallel_for(
      0, planes, std::max<int64_t>(1, 32768 / (h * w)), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          for (int64_t r = 0; r < oh; ++r) {
            const int64_t row = plane * h * w + 2 * r * w;
            for (int64_t col = 0; col < ow; ++col) {
              const int64_t at[4] = {row + 2 * col, row + 2 * col + 1, row + w + 2 * col,
                                     row + w + 2 * col + 1};
              const int64_t o = plane * oh * ow + r * ow + col;
              bool given = false;
              for (int64_t k : at) {
                const bool here = !given && static_cast<float>(xs[k]) == static_cast<float>(ys[o]);
                dxs[k] = here ? gs[o] : T(0);
                given = given || here;
              }
            }
          }
        }
      });
}

struct MaxPool2x2Function : torch::autograd::Function<MaxPool2x2Function> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input) {
    auto x = input.contiguous();
    auto y = at::empty({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2}, x.options());
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      max_pool_forward(x.data_ptr<T>(), x.size(0) * x.size(1), x.size(2), x.size(3),
                       y.data_ptr<T>());
    });
    ctx->save_for_backward({x, y});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& y = saved[1];
    auto g = grads[0].to(x.scalar_type()).contiguous();
    auto dx = at::empty_like(x);
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      max_pool_backward(x.data_ptr<T>(), y.data_ptr<T>(), g.data_ptr<T>(), x.size(0) * x.size(1),
                        x.size(2), x.size(3), dx.data_ptr<T>());
    });
    return {dx};
  }
};

// The sum of f(x[i]) over a plane, with four independent lanes of accumulation.
template <class T, class F>
float plane_total(const T* x, int64_t size, F f) {
  int64_t i = 0;
  float total = 0;
#ifdef __SSE2__
  struct Lanes {
    __m128 v;
    Lanes operator-(float m) const { return {_mm_sub_ps(v, _mm_set1_ps(m))}; }
    Lanes operator*(Lanes o) const { return {_mm_mul_ps(v, o.v)}; }
  };
  __m128 acc = _mm_setzero_ps();
  for (; i + 4 <= size; i += 4) acc = _mm_add_ps(acc, f(Lanes{load4(x + i)}).v);
  total = lane_sum(acc);
#endif
  for (; i < size; ++i) total += f(static_cast<float>(x[i]));
  return total;
}

// Per plane: the sum and the sum of squared deviations from the plane's mean (the second pass
// finds the plane in cache).
template <class T>
void plane_moments(const T* xs, const Planes& p, double* sum, double* m2) {
  at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = xs + plane * p.size;
      const float s = plane_total(xp, p.size, [](auto v) { return v; });
      const float mean = s / static_cast<float>(p.size);
      sum[plane] = s;
      m2[plane] = plane_total(xp, p.size, [mean](auto v) { return (v - mean) * (v - mean); });
    }
  });
}

// The per-channel affine map and PReLU slope of a fused BatchNorm(+PReLU): y = x * scale + shift,
// z = prelu(y, slope).
struct Affine {
  const float *scale, *shift, *slope;
  bool shared;
  float k(int64_t c) const { return slope[shared ? 0 : c]; }
};

template <class T>
void affine_prelu(const T* xs, const Affine& f, const Planes& p, T* zs) {
  at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % p.channels;
      const float s = f.scale[c], t = f.shift[c], k = f.k(c);
      const T* xp = xs + plane * p.size;
      T* zp = zs + plane * p.size;
      int64_t i = 0;
#ifdef __SSE2__
      const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), vk = _mm_set1_ps(k),
                   zero = _mm_setzero_ps();
      for (; i + 4 <= p.size; i += 4) {
        const __m128 y = _mm_add_ps(_mm_mul_ps(load4(xp + i), vs), vt);
        const __m128 positive = _mm_cmpgt_ps(y, zero);
        store4(zp + i, slope_where_not(positive, y, vk));
      }
#endif
      for (; i < p.size; ++i) {
        const float y = static_cast<float>(xp[i]) * s + t;
        zp[i] = y > 0 ? y : k * y;
      }
    }
  });
}

// Backward pass 1, per plane: sum(dy), sum(dy * (x - mean)) and the slope's gradient, where dy
// is the gradient reaching the BatchNorm's output, recomputed from x.
template <class T>
void backward_sums(const T* xs, const T* gs, const Affine& f, const float* ms, const Planes& p,
                   double* plane_dy, double* plane_dyx, double* plane_da) {
  at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % p.channels;
      const T* xp = xs + plane * p.size;
      const T* gp = gs + plane * p.size;
      const float m = ms[c], s = f.scale[c], t = f.shift[c], k = f.k(c);
      float sdy = 0, sdyx = 0, sda = 0;
      int64_t i = 0;
#ifdef __SSE2__
      const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), vk = _mm_set1_ps(k),
                   vm = _mm_set1_ps(m), zero = _mm_setzero_ps();
      __m128 acc_dy = zero, acc_dyx = zero, acc_da = zero;
      for (; i + 4 <= p.size; i += 4) {
        const __m128 xv = load4(xp + i), g = load4(gp + i);
        const __m128 y = _mm_add_ps(_mm_mul_ps(xv, vs), vt);
        const __m128 positive = _mm_cmpgt_ps(y, zero);
        const __m128 dy = slope_where_not(positive, g, vk);
        acc_dy = _mm_add_ps(acc_dy, dy);
        acc_dyx = _mm_add_ps(acc_dyx, _mm_mul_ps(dy, _mm_sub_ps(xv, vm)));
        acc_da = _mm_add_ps(acc_da, _mm_andnot_ps(positive, _mm_mul_ps(g, y)));
      }
      sdy = lane_sum(acc_dy);
      sdyx = lane_sum(acc_dyx);
      sda = lane_sum(acc_da);
#endif
      for (; i < p.size; ++i) {
        const float xv = xp[i], g = gp[i];
        const float y = xv * s + t;
        const float dy = y > 0 ? g : k * g;
        sdy += dy;
        sdyx += dy * (xv - m);
        sda += y > 0 ? 0.0f : g * y;
      }
      plane_dy[plane] = sdy;
      plane_dyx[plane] = sdyx;
      plane_da[plane] = sda;
    }
  });
}

// Backward pass 2: dx = A * dy + B * x + C per channel.
template <class T>
void backward_dx(const T* xs, const T* gs, const Affine& f, const float* A, const float* B,
                 const float* C, const Planes& p, T* dxs) {
  at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % p.channels;
      const T* xp = xs + plane * p.size;
      const T* gp = gs + plane * p.size;
      T* dxp = dxs + plane * p.size;
      const float s = f.scale[c], t = f.shift[c], k = f.k(c);
      int64_t i = 0;
#ifdef __SSE2__
      const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), vk = _mm_set1_ps(k),
                   va = _mm_set1_ps(A[c]), vb = _mm_set1_ps(B[c]), vc = _mm_set1_ps(C[c]),
                   zero = _mm_setzero_ps();
      for (; i + 4 <= p.size; i += 4) {
        const __m128 xv = load4(xp + i), g = load4(gp + i);
        const __m128 positive = _mm_cmpgt_ps(_mm_add_ps(_mm_mul_ps(xv, vs), vt), zero);
        const __m128 dy = slope_where_not(positive, g, vk);
        store4(dxp + i, _mm_add_ps(_mm_add_ps(_mm_mul_ps(va, dy), _mm_mul_ps(vb, xv)), vc));
      }
#endif
      for (; i < p.size; ++i) {
        const float xv = xp[i], g = gp[i];
        const float dy = xv * s + t > 0 ? g : k * g;
        dxp[i] = A[c] * dy + B[c] * xv + C[c];
      }
    }
  });
}

// Training-mode BatchNorm over [N, C, H, W], optionally followed by PReLU, in one pass forward
// and two backward. Neither the normalised tensor nor its gradient is ever stored: the backward
// recomputes them from the input, which the BatchNorm keeps anyway. Statistics, parameters and
// arithmetic are fp32 whatever the activations' type.
struct BatchNormPReLUFunction : torch::autograd::Function<BatchNormPReLUFunction> {
  // Per-channel sums over the planes of a channel, in double, in plane order.
  static std::vector<double> channel_sums(const std::vector<double>& planes, int64_t channels) {
    std::vector<double> sums(channels, 0.0);
    for (size_t p = 0; p < planes.size(); ++p) sums[p % channels] += planes[p];
    return sums;
  }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& gamma,
                            const at::Tensor& beta, const at::Tensor& slope, bool has_slope,
                            double eps, at::Tensor running_mean, at::Tensor running_var,
                            double momentum) {
    auto x = input.contiguous();
    const Planes p(x);
    const int64_t count = p.count / p.channels * p.size;  // elements per channel
    std::vector<double> plane_sum(p.count), plane_m2(p.count);
    with_element_type(x, [&](auto t) {
      plane_moments(x.data_ptr<decltype(t)>(), p, plane_sum.data(), plane_m2.data());
    });
    const auto sums = channel_sums(plane_sum, p.channels);
    const auto stats = gamma.options();  // fp32
    auto mean = at::empty({p.channels}, stats);
    auto invstd = at::empty({p.channels}, stats);
    auto var_unbiased = at::empty({p.channels}, stats);
    std::vector<double> m2(p.channels, 0.0);
    for (int64_t plane = 0; plane < p.count; ++plane) {
      const int64_t c = plane % p.channels;
      const double d = plane_sum[plane] / p.size - sums[c] / count;
      m2[c] += plane_m2[plane] + p.size * d * d;  // Chan et al.'s pairwise combination
    }
    for (int64_t c = 0; c < p.channels; ++c) {
      mean.data_ptr<float>()[c] = static_cast<float>(sums[c] / count);
      invstd.data_ptr<float>()[c] = static_cast<float>(1.0 / std::sqrt(m2[c] / count + eps));
      var_unbiased.data_ptr<float>()[c] =
          static_cast<float>(m2[c] / std::max<int64_t>(1, count - 1));
    }
    if (running_mean.defined()) {
      running_mean.mul_(1 - momentum).add_(mean, momentum);
      running_var.mul_(1 - momentum).add_(var_unbiased, momentum);
    }
    const auto scale = (gamma * invstd).contiguous();
    const auto shift = (beta - mean * scale).contiguous();
    const auto a = slope.contiguous();  // ones({1}) when there is no PReLU
    auto z = at::empty_like(x);
    const Affine f{scale.data_ptr<float>(), shift.data_ptr<float>(), a.data_ptr<float>(),
                   a.numel() == 1};
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      affine_prelu(x.data_ptr<T>(), f, p, z.data_ptr<T>());
    });
    ctx->save_for_backward({x, gamma, beta, a, mean, invstd});
    ctx->saved_data["has_slope"] = has_slope;
    return z;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    if (!grads[0].defined()) return tensor_list(9);
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &gamma = saved[1], &beta = saved[2], &a = saved[3], &mean = saved[4],
               &invstd = saved[5];
    auto dz = grads[0].to(x.scalar_type()).contiguous();
    const Planes p(x);
    const int64_t count = p.count / p.channels * p.size;
    const auto scale = (gamma * invstd).contiguous();
    const auto shift = (beta - mean * scale).contiguous();
    const Affine f{scale.data_ptr<float>(), shift.data_ptr<float>(), a.data_ptr<float>(),
                   a.numel() == 1};
    const float* ms = mean.data_ptr<float>();
    std::vector<double> plane_dy(p.count), plane_dyx(p.count), plane_da(p.count);
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      backward_sums(x.data_ptr<T>(), dz.data_ptr<T>(), f, ms, p, plane_dy.data(), plane_dyx.data(),
                    plane_da.data());
    });
    const auto sum_dy = channel_sums(plane_dy, p.channels);
    const auto sum_dyx = channel_sums(plane_dyx, p.channels);
    const auto sum_da = channel_sums(plane_da, p.channels);
    // dx = gamma * invstd * (dy - mean(dy) - (x - mean) * invstd^2 * mean(dy * (x - mean)))
    //    = A * dy + B * x + C per channel.
    auto dgamma = at::empty_like(gamma), dbeta = at::empty_like(beta);
    std::vector<float> A(p.channels), B(p.channels), C(p.channels);
    const float* is = invstd.data_ptr<float>();
    const auto g = gamma.contiguous();
    for (int64_t c = 0; c < p.channels; ++c) {
      const double k = double{g.data_ptr<float>()[c]} * is[c];
      const double c1 = sum_dy[c] / count, c2 = double{is[c]} * is[c] * sum_dyx[c] / count;
      A[c] = static_cast<float>(k);
      B[c] = static_cast<float>(-k * c2);
      C[c] = static_cast<float>(-k * c1 + k * c2 * ms[c]);
      dgamma.data_ptr<float>()[c] = static_cast<float>(sum_dyx[c] * is[c]);
      dbeta.data_ptr<float>()[c] = static_cast<float>(sum_dy[c]);
    }
    auto dx = at::empty_like(x);
    with_element_type(x, [&](auto t) {
      using T = decltype(t);
      backward_dx(x.data_ptr<T>(), dz.data_ptr<T>(), f, A.data(), B.data(), C.data(), p,
                  dx.data_ptr<T>());
    });
    at::Tensor dslope;
    if (ctx->saved_data["has_slope"].toBool()) {
      dslope = at::zeros({a.numel()}, torch::kDouble);
      double* ds = dslope.data_ptr<double>();
      for (int64_t c = 0; c < p.channels; ++c) ds[a.numel() == 1 ? 0 : c] += sum_da[c];
      dslope = dslope.to(a.scalar_type()).view(a.sizes());
    }
    return {dx,           dgamma,       dbeta,        dslope,      at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool fast_path(const at::Tensor& x) {
  return x.device().is_cpu() &&
         (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) &&
         x.dim() >= 2;
}

}  // namespace

at::Tensor fused_prelu(const at::Tensor& x, const at::Tensor& weight) {
  if (!fast_path(x) || weight.scalar_type() != torch::kFloat32 ||
      (weight.numel() != 1 && weight.numel() != x.size(1))) {
    return at::prelu(x, weight);
  }
  return PReLUFunction::apply(x, weight);
}

at::Tensor fused_max_pool_2x2(const at::Tensor& x) {
  if (!fast_path(x) || x.dim() != 4 || x.size(2) % 2 || x.size(3) % 2) {
    return at::max_pool2d(x, {2, 2}, {2, 2});
  }
  return MaxPool2x2Function::apply(x);
}

at::Tensor batch_norm_prelu(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                            const at::Tensor& slope) {
  const auto& o = bn.options;
  const bool fused = bn.is_training() && o.affine() && fast_path(x) && x.dim() == 4 &&
                     x.is_contiguous() && x.numel() > x.size(1) && bn.weight.numel() == x.size(1) &&
                     bn.weight.scalar_type() == torch::kFloat32 &&
                     (!slope.defined() || (slope.scalar_type() == torch::kFloat32 &&
                                           (slope.numel() == 1 || slope.numel() == x.size(1))));
  if (!fused) {
    auto y = bn.forward(x);
    return slope.defined() ? fused_prelu(y, slope) : y;
  }
  // The running statistics as torch::nn::BatchNorm2d's forward updates them.
  double momentum = o.momentum().value_or(0.0);
  at::Tensor running_mean, running_var;
  if (o.track_running_stats()) {
    running_mean = bn.running_mean;
    running_var = bn.running_var;
    if (bn.num_batches_tracked.defined()) {
      bn.num_batches_tracked += 1;
      if (!o.momentum()) momentum = 1.0 / bn.num_batches_tracked.item<double>();
    }
  }
  return BatchNormPReLUFunction::apply(
      x, bn.weight, bn.bias, slope.defined() ? slope : at::ones({1}, bn.weight.options()),
      slope.defined(), o.eps(), running_mean, running_var, momentum);
}

PReLUImpl::PReLUImpl(int64_t num_parameters) {
  weight = register_parameter("weight", torch::full({num_parameters}, 0.25));
}

torch::Tensor PReLUImpl::forward(const torch::Tensor& x) { return fused_prelu(x, weight); }

}  // namespace arcface
