// ATen 1.13 trains a convolution with three independent oneDNN calls on plain NCHW tensors
// and reorders each operand into oneDNN's blocked layout for every call: six activation-sized
// copies per convolution per step, about a seventh of an IR-ResNet18 step on AVX2. Calling
// oneDNN directly keeps the forward's blocked input for the weight gradient and converts the
// output gradient once for both gradients. Under bf16 autocast it computes in bf16 from the fp32
// weights and returns their gradient in fp32, without ATen's casts of weights and gradients.
#include "models/onednn_conv.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#ifdef ARCFACE_WITH_ONEDNN
#include <dnnl.hpp>
#endif
#include <optional>
#include <variant>

#include "arcface/system.h"
#include "util/torch_compat.h"

namespace arcface {

#ifdef ARCFACE_WITH_ONEDNN
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using dims = dnnl::memory::dims;
using dtype = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  return cpu;
}

dtype type_of(at::ScalarType t) { return t == at::kBFloat16 ? dtype::bf16 : dtype::f32; }

dnnl::memory::desc any_layout(const dims& shape, dtype type) {
  return {shape, type, dnnl::memory::format_tag::any};
}

dnnl::memory::desc plain_layout(const dims& shape, dtype type) {
  return {shape, type, dnnl::memory::format_tag::abcd};
}

/// A contiguous [N, C, H, W] or [O, I, kH, kW] tensor as oneDNN memory.
dnnl::memory plain(const at::Tensor& t) {
  return {plain_layout(t.sizes().vec(), type_of(t.scalar_type())), engine(), t.data_ptr()};
}

/// Memory in `desc`'s layout backed by a new ATen buffer, kept alive by `storage`.
dnnl::memory allocate(const dnnl::memory::desc& desc, at::Tensor& storage) {
  storage = at::empty({static_cast<int64_t>(desc.get_size())}, torch::kUInt8);
  return {desc, engine(), storage.data_ptr()};
}

/// `from` in `desc`'s layout: itself when it already is, else a reordered copy in `storage`.
dnnl::memory in_layout(dnnl::memory from, const dnnl::memory::desc& desc, at::Tensor& storage,
                       dnnl::stream& stream) {
  if (from.get_desc() == desc) return from;
  auto to = allocate(desc, storage);
  dnnl::reorder(from, to).execute(stream, from, to);
  return to;
}

/// Runs `produce` into `desc`'s layout and leaves the result in the plain tensor `out`.
template <class Produce>
void into_plain(const at::Tensor& out, const dnnl::memory::desc& desc, dnnl::stream& stream,
                Produce produce) {
  auto target = plain(out);
  if (desc == target.get_desc()) {
    produce(target);
    return;
  }
  at::Tensor storage;
  auto blocked = allocate(desc, storage);
  produce(blocked);
  dnnl::reorder(blocked, target).execute(stream, blocked, target);
}

/// A convolution's shapes and the type it computes in (activations and weights; the weight
/// gradient is always fp32): enough to rebuild its primitive descriptors in the backward.
struct Geometry {
  dims src, weights, dst, strides, padding;
  dtype type;

  Geometry(const dims& src, const dims& weights, int64_t stride, int64_t pad, dtype type)
      : src(src), weights(weights), strides{stride, stride}, padding{pad, pad}, type(type) {
    auto out = [&](int64_t in, int64_t k) { return (in + 2 * pad - k) / stride + 1; };
    dst = {src[0], weights[0], out(src[2], weights[2]), out(src[3], weights[3])};
  }

  dnnl::convolution_forward::primitive_desc forward() const {
    return {{dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
             any_layout(src, type), any_layout(weights, type), any_layout(dst, type), strides,
             padding, padding},
            engine()};
  }
};

struct ConvFunction : torch::autograd::Function<ConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            int64_t stride, int64_t pad, at::ScalarType compute) {
    auto x = input.to(compute).contiguous();
    auto w = weight.to(compute).contiguous();
    const Geometry g(x.sizes().vec(), w.sizes().vec(), stride, pad, type_of(compute));
    const auto pd = g.forward();
    dnnl::stream stream(engine());
    at::Tensor src_storage, weights_storage;
    auto src = in_layout(plain(x), pd.src_desc(), src_storage, stream);
    auto weights = in_layout(plain(w), pd.weights_desc(), weights_storage, stream);
    auto y = at::empty(g.dst, x.options());
    into_plain(y, pd.dst_desc(), stream, [&](dnnl::memory& dst) {
      dnnl::convolution_forward(pd).execute(
          stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    });
    stream.wait();
    // The weight gradient reads the input in the forward's layout: keep that copy, not x.
    ctx->saved_data["src"] = src_storage.defined() ? src_storage : x;
    ctx->saved_data["src_blocked"] = src_storage.defined();
    ctx->saved_data["src_sizes"] = x.sizes().vec();
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["pad"] = pad;
    ctx->saved_data["input_type"] = input.scalar_type();
    ctx->save_for_backward({w});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const tensor_list none(5);
    if (!grads[0].defined()) return none;
    const auto w = ctx->get_saved_variables()[0];  // in the type computed in
    auto dy = grads[0].to(w.scalar_type()).contiguous();
    const Geometry g(ctx->saved_data["src_sizes"].toIntVector(), w.sizes().vec(),
                     ctx->saved_data["stride"].toInt(), ctx->saved_data["pad"].toInt(),
                     type_of(w.scalar_type()));
    const auto fwd = g.forward();
    dnnl::stream stream(engine());
    const auto diff_dst_plain = plain(dy);
    at::Tensor diff_dst_storage;
    std::optional<dnnl::memory> diff_dst;  // the output gradient once converted, for both
    auto diff_dst_in = [&](const dnnl::memory::desc& desc) {
      if (!diff_dst || diff_dst->get_desc() != desc) {
        diff_dst = in_layout(diff_dst_plain, desc, diff_dst_storage, stream);
      }
      return *diff_dst;
    };
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      const dnnl::convolution_backward_data::primitive_desc pd(
          {dnnl::algorithm::convolution_direct, any_layout(g.src, g.type),
           any_layout(g.weights, g.type), any_layout(g.dst, g.type), g.strides, g.padding,
           g.padding},
          engine(), fwd);
      at::Tensor weights_storage;
      auto weights = in_layout(plain(w), pd.weights_desc(), weights_storage, stream);
      auto diff = diff_dst_in(pd.diff_dst_desc());
      dx = at::empty(g.src, dy.options());
      into_plain(dx, pd.diff_src_desc(), stream, [&](dnnl::memory& diff_src) {
        dnnl::convolution_backward_data(pd).execute(stream, {{DNNL_ARG_DIFF_DST, diff},
                                                             {DNNL_ARG_WEIGHTS, weights},
                                                             {DNNL_ARG_DIFF_SRC, diff_src}});
      });
      stream.wait();
      dx = dx.to(ctx->saved_data["input_type"].toScalarType());
    }
    if (ctx->needs_input_grad(1)) {
      const dnnl::convolution_backward_weights::primitive_desc pd(
          {dnnl::algorithm::convolution_direct, any_layout(g.src, g.type),
           any_layout(g.weights, dtype::f32), any_layout(g.dst, g.type), g.strides, g.padding,
           g.padding},
          engine(), fwd);
      const auto saved = ctx->saved_data["src"].toTensor();
      const dnnl::memory kept(
          ctx->saved_data["src_blocked"].toBool() ? fwd.src_desc() : plain_layout(g.src, g.type),
          engine(), saved.data_ptr());
      at::Tensor src_storage;
      auto src = in_layout(kept, pd.src_desc(), src_storage, stream);
      auto diff = diff_dst_in(pd.diff_dst_desc());
      dw = at::empty(g.weights, dy.options().dtype(torch::kFloat32));
      into_plain(dw, pd.diff_weights_desc(), stream, [&](dnnl::memory& diff_weights) {
        dnnl::convolution_backward_weights(pd).execute(stream,
                                                       {{DNNL_ARG_SRC, src},
                                                        {DNNL_ARG_DIFF_DST, diff},
                                                        {DNNL_ARG_DIFF_WEIGHTS, diff_weights}});
      });
    }
    stream.wait();
    return {dx, dw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace
#endif

at::Tensor conv2d(torch::nn::Conv2dImpl& conv, const at::Tensor& x) {
#ifndef ARCFACE_WITH_ONEDNN
  return conv.forward(x);  // built without oneDNN: ATen's convolution
#else
  const auto& o = conv.options;
  // The options' variants are c10's before 2.2 and std's after: unqualified calls find either.
  using std::get_if;
  using std::holds_alternative;
  const auto* padding = get_if<torch::ExpandingArray<2> >(&o.padding());
  const auto& stride = *o.stride();
  const auto& dilation = *o.dilation();
  // Under bf16 autocast, on CPUs that compute bf16 natively (elsewhere oneDNN would emulate it).
  static const bool native_bf16 = cpu_has_native_bf16();
  const auto compute =
      compat::autocast_enabled(c10::kCPU) ? compat::autocast_dtype(c10::kCPU) : torch::kFloat32;
  const bool typed = compute == torch::kFloat32 ? x.scalar_type() == torch::kFloat32
                                                : compute == torch::kBFloat16 && native_bf16 &&
                                                      (x.scalar_type() == torch::kFloat32 ||
                                                       x.scalar_type() == torch::kBFloat16);
  const bool direct =
      torch::GradMode::is_enabled() && conv.weight.requires_grad() && x.device().is_cpu() &&
      typed && x.dim() == 4 && x.is_contiguous() && x.size(1) == conv.weight.size(1) &&
      conv.weight.scalar_type() == torch::kFloat32 && !conv.bias.defined() && o.groups() == 1 &&
      padding && (**padding)[0] == (**padding)[1] && stride[0] == stride[1] && dilation[0] == 1 &&
      dilation[1] == 1 && holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) &&
      at::globalContext().userEnabledMkldnn();
  // Anything else, a mismatched input included, goes to ATen and its own error messages.
  if (!direct) return conv.forward(x);
  return ConvFunction::apply(x, conv.weight, stride[0], (**padding)[0], compute);
#endif
}

}  // namespace arcface
