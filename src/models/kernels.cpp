// Fused CPU kernels for the element-wise layers of face backbones. ATen's PReLU backward takes
// several passes over large activations and its 2x2 max-pooling runs at a fraction of the
// memory bandwidth; these take one vectorised pass each way.
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

#ifdef __SSE2__
// The sum of a vector's four lanes, in a fixed order.
float lane_sum(__m128 v) {
  float lanes[4];
  _mm_storeu_ps(lanes, v);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}
#endif

struct PReLUFunction : torch::autograd::Function<PReLUFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& weight) {
    auto x = input.contiguous();
    auto w = weight.contiguous();
    auto y = at::empty_like(x);
    const Planes p(x);
    const bool shared = w.numel() == 1;
    const float* xs = x.data_ptr<float>();
    const float* ws = w.data_ptr<float>();
    float* ys = y.data_ptr<float>();
    at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const float a = ws[shared ? 0 : plane % p.channels];
        const float* xp = xs + plane * p.size;
        float* yp = ys + plane * p.size;
        int64_t i = 0;
#ifdef __SSE2__
        // y = max(x, 0) + a * min(x, 0); written out because GCC does not vectorise the select.
        const __m128 va = _mm_set1_ps(a), zero = _mm_setzero_ps();
        for (; i + 4 <= p.size; i += 4) {
          const __m128 v = _mm_loadu_ps(xp + i);
          _mm_storeu_ps(yp + i,
                        _mm_add_ps(_mm_max_ps(v, zero), _mm_mul_ps(va, _mm_min_ps(v, zero))));
        }
#endif
        for (; i < p.size; ++i) {
          const float v = xp[i];
          yp[i] = v > 0 ? v : a * v;
        }
      }
    });
    ctx->save_for_backward({x, w});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    auto g = grads[0].contiguous();
    auto dx = at::empty_like(x);
    const Planes p(x);
    const bool shared = w.numel() == 1;
    // Per-plane partial sums of the weight gradient, reduced in a fixed order afterwards so
    // the result does not depend on the thread schedule.
    std::vector<double> partial(p.count, 0.0);
    const float* xs = x.data_ptr<float>();
    const float* gs = g.data_ptr<float>();
    const float* ws = w.data_ptr<float>();
    float* dxs = dx.data_ptr<float>();
    at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const float a = ws[shared ? 0 : plane % p.channels];
        const float* xp = xs + plane * p.size;
        const float* gp = gs + plane * p.size;
        float* dxp = dxs + plane * p.size;
        float sum = 0;
        int64_t i = 0;
#ifdef __SSE2__
        const __m128 va = _mm_set1_ps(a), zero = _mm_setzero_ps();
        __m128 acc = _mm_setzero_ps();
        for (; i + 4 <= p.size; i += 4) {
          const __m128 v = _mm_loadu_ps(xp + i), d = _mm_loadu_ps(gp + i);
          const __m128 positive = _mm_cmpgt_ps(v, zero);
          // dx = x > 0 ? g : a * g;  dw += x > 0 ? 0 : g * x
          _mm_storeu_ps(dxp + i, _mm_or_ps(_mm_and_ps(positive, d),
                                           _mm_andnot_ps(positive, _mm_mul_ps(va, d))));
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
    auto dw = at::zeros({w.numel()}, torch::kDouble);
    double* dws = dw.data_ptr<double>();
    for (int64_t plane = 0; plane < p.count; ++plane) {
      dws[shared ? 0 : plane % p.channels] += partial[plane];
    }
    return {dx, dw.to(w.scalar_type()).view(w.sizes())};
  }
};

struct MaxPool2x2Function : torch::autograd::Function<MaxPool2x2Function> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input) {
    auto x = input.contiguous();
    const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
    const int64_t oh = h / 2, ow = w / 2;
    auto y = at::empty({x.size(0), x.size(1), oh, ow}, x.options());
    const float* xs = x.data_ptr<float>();
    float* ys = y.data_ptr<float>();
    at::parallel_for(
        0, planes, std::max<int64_t>(1, 32768 / (h * w)), [&](int64_t begin, int64_t end) {
          for (int64_t plane = begin; plane < end; ++plane) {
            for (int64_t r = 0; r < oh; ++r) {
              const float* top = xs + plane * h * w + 2 * r * w;
              const float* bottom = top + w;
              float* out = ys + plane * oh * ow + r * ow;
              int64_t col = 0;
#ifdef __SSE2__
              for (; col + 4 <= ow; col += 4) {
                const __m128 m0 =
                    _mm_max_ps(_mm_loadu_ps(top + 2 * col), _mm_loadu_ps(bottom + 2 * col));
                const __m128 m1 =
                    _mm_max_ps(_mm_loadu_ps(top + 2 * col + 4), _mm_loadu_ps(bottom + 2 * col + 4));
                _mm_storeu_ps(out + col,
                              _mm_max_ps(_mm_shuffle_ps(m0, m1, _MM_SHUFFLE(2, 0, 2, 0)),
                                         _mm_shuffle_ps(m0, m1, _MM_SHUFFLE(3, 1, 3, 1))));
              }
#endif
              for (; col < ow; ++col) {
                out[col] = std::max(std::max(top[2 * col], top[2 * col + 1]),
                                    std::max(bottom[2 * col], bottom[2 * col + 1]));
              }
            }
          }
        });
    ctx->save_for_backward({x, y});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& y = saved[1];
    auto g = grads[0].contiguous();
    const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
    const int64_t oh = h / 2, ow = w / 2;
    auto dx = at::empty_like(x);
    const float* xs = x.data_ptr<float>();
    const float* ys = y.data_ptr<float>();
    const float* gs = g.data_ptr<float>();
    float* dxs = dx.data_ptr<float>();
    // The gradient goes to the first input of each window (in row order) that equals the
    // maximum, as ATen's indices do; every element of dx is written once.
    at::parallel_for(0, planes, std::max<int64_t>(1, 32768 / (h * w)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t plane = begin; plane < end; ++plane) {
                         for (int64_t r = 0; r < oh; ++r) {
                           const int64_t row = plane * h * w + 2 * r * w;
                           for (int64_t col = 0; col < ow; ++col) {
                             const int64_t at[4] = {row + 2 * col, row + 2 * col + 1,
                                                    row + w + 2 * col, row + w + 2 * col + 1};
                             const int64_t o = plane * oh * ow + r * ow + col;
                             bool given = false;
                             for (int64_t k : at) {
                               const bool here = !given && xs[k] == ys[o];
                               dxs[k] = here ? gs[o] : 0.0f;
                               given = given || here;
                             }
                           }
                         }
                       }
                     });
    return {dx};
  }
};

// The sum of f(x[i]) over a plane, with four independent lanes of accumulation.
template <class F>
float plane_total(const float* x, int64_t size, F f) {
  int64_t i = 0;
  float total = 0;
#ifdef __SSE2__
  struct Lanes {
    __m128 v;
    Lanes operator-(float m) const { return {_mm_sub_ps(v, _mm_set1_ps(m))}; }
    Lanes operator*(Lanes o) const { return {_mm_mul_ps(v, o.v)}; }
  };
  __m128 acc = _mm_setzero_ps();
  for (; i + 4 <= size; i += 4) acc = _mm_add_ps(acc, f(Lanes{_mm_loadu_ps(x + i)}).v);
  total = lane_sum(acc);
#endif
  for (; i < size; ++i) total += f(x[i]);
  return total;
}

// Training-mode BatchNorm over [N, C, H, W], optionally followed by PReLU, in one pass forward
// and two backward. Neither the normalised tensor nor its gradient is ever stored: the backward
// recomputes them from the input, which the BatchNorm keeps anyway.
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
    const float* xs = x.data_ptr<float>();
    // Plane means and squared deviations: the second pass finds the plane in cache.
    std::vector<double> plane_sum(p.count), plane_m2(p.count);
    at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const float* xp = xs + plane * p.size;
        const float sum = plane_total(xp, p.size, [](auto v) { return v; });
        const float mean = sum / static_cast<float>(p.size);
        plane_sum[plane] = sum;
        plane_m2[plane] =
            plane_total(xp, p.size, [mean](auto v) { return (v - mean) * (v - mean); });
      }
    });
    const auto sums = channel_sums(plane_sum, p.channels);
    auto mean = at::empty({p.channels}, x.options());
    auto invstd = at::empty({p.channels}, x.options());
    auto var_unbiased = at::empty({p.channels}, x.options());
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
    // y = x * scale + shift, then PReLU.
    const auto scale = (gamma * invstd).contiguous();
    const auto shift = (beta - mean * scale).contiguous();
    const auto a = slope.contiguous();  // ones({1}) when there is no PReLU
    auto z = at::empty_like(x);
    const float* ss = scale.data_ptr<float>();
    const float* ts = shift.data_ptr<float>();
    const float* as = a.data_ptr<float>();
    float* zs = z.data_ptr<float>();
    at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t c = plane % p.channels;
        const float s = ss[c], t = ts[c], k = as[a.numel() == 1 ? 0 : c];
        const float* xp = xs + plane * p.size;
        float* zp = zs + plane * p.size;
        int64_t i = 0;
#ifdef __SSE2__
        const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), vk = _mm_set1_ps(k),
                     zero = _mm_setzero_ps();
        for (; i + 4 <= p.size; i += 4) {
          const __m128 y = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(xp + i), vs), vt);
          _mm_storeu_ps(zp + i,
                        _mm_add_ps(_mm_max_ps(y, zero), _mm_mul_ps(vk, _mm_min_ps(y, zero))));
        }
#endif
        for (; i < p.size; ++i) {
          const float y = xp[i] * s + t;
          zp[i] = y > 0 ? y : k * y;
        }
      }
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
    auto dz = grads[0].contiguous();
    const Planes p(x);
    const int64_t count = p.count / p.channels * p.size;
    const auto scale = (gamma * invstd).contiguous();
    const auto shift = (beta - mean * scale).contiguous();
    const float* xs = x.data_ptr<float>();
    const float* gs = dz.data_ptr<float>();
    const float* ss = scale.data_ptr<float>();
    const float* ts = shift.data_ptr<float>();
    const float* as = a.data_ptr<float>();
    const float* ms = mean.data_ptr<float>();
    // The gradient reaching the BatchNorm's output, recomputed from x where it is needed.
    auto dy_at = [&](int64_t c, float xv, float g) {
      const float y = xv * ss[c] + ts[c];
      return y > 0 ? g : as[a.numel() == 1 ? 0 : c] * g;
    };
    // Pass 1: per plane, sum(dy), sum(dy * (x - mean)) and the PReLU slope's gradient.
    std::vector<double> plane_dy(p.count), plane_dyx(p.count), plane_da(p.count);
    at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t c = plane % p.channels;
        const float* xp = xs + plane * p.size;
        const float* gp = gs + plane * p.size;
        const float m = ms[c], s = ss[c], t = ts[c], k = as[a.numel() == 1 ? 0 : c];
        float sdy = 0, sdyx = 0, sda = 0;
        int64_t i = 0;
#ifdef __SSE2__
        const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), vk = _mm_set1_ps(k),
                     vm = _mm_set1_ps(m), zero = _mm_setzero_ps();
        __m128 acc_dy = zero, acc_dyx = zero, acc_da = zero;
        for (; i + 4 <= p.size; i += 4) {
          const __m128 xv = _mm_loadu_ps(xp + i), g = _mm_loadu_ps(gp + i);
          const __m128 y = _mm_add_ps(_mm_mul_ps(xv, vs), vt);
          const __m128 positive = _mm_cmpgt_ps(y, zero);
          const __m128 dy =
              _mm_or_ps(_mm_and_ps(positive, g), _mm_andnot_ps(positive, _mm_mul_ps(vk, g)));
          acc_dy = _mm_add_ps(acc_dy, dy);
          acc_dyx = _mm_add_ps(acc_dyx, _mm_mul_ps(dy, _mm_sub_ps(xv, vm)));
          acc_da = _mm_add_ps(acc_da, _mm_andnot_ps(positive, _mm_mul_ps(g, y)));
        }
        sdy = lane_sum(acc_dy);
        sdyx = lane_sum(acc_dyx);
        sda = lane_sum(acc_da);
#endif
        for (; i < p.size; ++i) {
          const float y = xp[i] * s + t, g = gp[i];
          const float dy = y > 0 ? g : k * g;
          sdy += dy;
          sdyx += dy * (xp[i] - m);
          sda += y > 0 ? 0.0f : g * y;
        }
        plane_dy[plane] = sdy;
        plane_dyx[plane] = sdyx;
        plane_da[plane] = sda;
      }
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
    float* dxs = dx.data_ptr<float>();
    at::parallel_for(0, p.count, grain(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t c = plane % p.channels;
        const float* xp = xs + plane * p.size;
        const float* gp = gs + plane * p.size;
        float* dxp = dxs + plane * p.size;
        int64_t i = 0;
#ifdef __SSE2__
        const __m128 vs = _mm_set1_ps(ss[c]), vt = _mm_set1_ps(ts[c]),
                     vk = _mm_set1_ps(as[a.numel() == 1 ? 0 : c]), va = _mm_set1_ps(A[c]),
                     vb = _mm_set1_ps(B[c]), vc = _mm_set1_ps(C[c]), zero = _mm_setzero_ps();
        for (; i + 4 <= p.size; i += 4) {
          const __m128 xv = _mm_loadu_ps(xp + i), g = _mm_loadu_ps(gp + i);
          const __m128 positive = _mm_cmpgt_ps(_mm_add_ps(_mm_mul_ps(xv, vs), vt), zero);
          const __m128 dy =
              _mm_or_ps(_mm_and_ps(positive, g), _mm_andnot_ps(positive, _mm_mul_ps(vk, g)));
          _mm_storeu_ps(dxp + i,
                        _mm_add_ps(_mm_add_ps(_mm_mul_ps(va, dy), _mm_mul_ps(vb, xv)), vc));
        }
#endif
        for (; i < p.size; ++i) dxp[i] = A[c] * dy_at(c, xp[i], gp[i]) + B[c] * xp[i] + C[c];
      }
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
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() >= 2;
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
      x, bn.weight, bn.bias, slope.defined() ? slope : at::ones({1}, x.options()), slope.defined(),
      o.eps(), running_mean, running_var, momentum);
}

PReLUImpl::PReLUImpl(int64_t num_parameters) {
  weight = register_parameter("weight", torch::full({num_parameters}, 0.25));
}

torch::Tensor PReLUImpl::forward(const torch::Tensor& x) { return fused_prelu(x, weight); }

}  // namespace arcface
