// Fused CPU kernels for the element-wise layers of face backbones. ATen's PReLU backward takes
// several passes over large activations and its 2x2 max-pooling runs at a fraction of the
// memory bandwidth; these take one vectorised pass each way.
#include "models/kernels.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>

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
        float lanes[4];
        _mm_storeu_ps(lanes, acc);
        sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
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

PReLUImpl::PReLUImpl(int64_t num_parameters) {
  weight = register_parameter("weight", torch::full({num_parameters}, 0.25));
}

torch::Tensor PReLUImpl::forward(const torch::Tensor& x) { return fused_prelu(x, weight); }

}  // namespace arcface
