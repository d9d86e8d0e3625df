#include "kernels/cuda/attention_cudnn.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/core/error.hpp"

#if DPT_HAVE_CUDNN_FRONTEND
#include <cudnn_frontend.h>
#endif

namespace dpt::gpu {

namespace {

bool read_enabled() {
  const char* v = std::getenv("DPT_CUDNN_ATTENTION");
  if (!v || std::string(v) == "1") return true;
  if (std::string(v) == "0") return false;
  throw InputError(std::string("DPT_CUDNN_ATTENTION: '") + v + "' is neither 0 nor 1");
}

}  // namespace

bool CudnnAttention::built_in() { return DPT_HAVE_CUDNN_FRONTEND != 0; }
bool CudnnAttention::enabled() {
  const bool on = read_enabled();  // a bad value is an error in every build
  return built_in() && on;
}

#if DPT_HAVE_CUDNN_FRONTEND

namespace fe = cudnn_frontend;

namespace {

// The tensors' ids in the graphs' variant packs.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kLse, kDO, kDQ, kDK, kDV };

using Tensor = std::shared_ptr<fe::graph::Tensor_attributes>;

// cuDNN's view of the fused layout: q, k and v as [b, n_head, t, hs] tensors inside the rows of
// qkv [b, t, 3c] (a row's heads hs apart, rows 3c apart), out and its gradient inside [b, t, c],
// the log-sum-exp as [b, n_head, t, 1] floats.
struct Layout {
  std::vector<int64_t> dim, qkv_stride, out_stride, lse_dim, lse_stride;
  Layout(int64_t b, int64_t t, int64_t c, int64_t n_head) {
    const int64_t hs = c / n_head;
    dim = {b, n_head, t, hs};
    qkv_stride = {t * 3 * c, hs, 3 * c, 1};
    out_stride = {t * c, hs, c, 1};
    lse_dim = {b, n_head, t, 1};
    lse_stride = {n_head * t, t, 1, 1};
  }
};

std::shared_ptr<fe::graph::Graph> new_graph() {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

Tensor input(fe::graph::Graph& g, const char* name, Uid uid, const std::vector<int64_t>& dim,
             const std::vector<int64_t>& stride) {
  return g.tensor(
      fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dim).set_stride(stride));
}

// Validates the graph and builds cuDNN's first heuristic plan for it; when cuDNN has none, the
// step that failed and cuDNN's message, else an empty string.
std::string build(fe::graph::Graph& g, cudnnHandle_t handle, int64_t& workspace) {
  const auto failed = [](const char* step, const fe::error_t& e) {
    return e.is_good() ? std::string() : std::string(step) + ": " + e.err_msg;
  };
  std::string why = failed("validate", g.validate());
  if (why.empty()) why = failed("build_operation_graph", g.build_operation_graph(handle));
  if (why.empty())
    why = failed("create_execution_plans", g.create_execution_plans({fe::HeurMode_t::A}));
  if (why.empty()) why = failed("check_support", g.check_support(handle));
  if (why.empty()) why = failed("build_plans", g.build_plans(handle));
  if (why.empty()) why = failed("get_workspace_size", g.get_workspace_size(workspace));
  return why;
}

void check(const fe::error_t& e, const char* what) {
  if (e.is_bad()) throw SystemError(std::string("cuDNN attention ") + what + ": " + e.err_msg);
}

float scale_of(int64_t c, int64_t n_head) {
  return 1.0f / std::sqrt(static_cast<float>(c / n_head));
}

}  // namespace

struct CudnnAttention::Graphs {
  std::shared_ptr<fe::graph::Graph> forward, backward;
  int64_t workspace = 0;
};

CudnnAttention::CudnnAttention(cudnnHandle_t handle) : handle_(handle), enabled_(read_enabled()) {}
CudnnAttention::~CudnnAttention() = default;

CudnnAttention::Graphs* CudnnAttention::graphs(int64_t b, int64_t t, int64_t c, int64_t n_head) {
  const Key key{b, t, c, n_head};
  const auto found = cache_.find(key);
  if (found != cache_.end()) return found->second.get();
  std::unique_ptr<Graphs>& slot = cache_[key];
  if (!enabled_) {
    why_not_[key] = "DPT_CUDNN_ATTENTION=0";
    return nullptr;
  }
  if (b <= 0 || t <= 0 || n_head <= 0 || c % n_head != 0) {
    why_not_[key] = "no such attention";
    return nullptr;
  }
  // The frontend reports most failures as a status, which build() turns into a reason, but
  // some of its calls throw (sdpa() when no implementation suits the attributes): either way
  // the size runs unfused, with the reason kept for why_not.
  try {
    slot = make_graphs(b, t, c, n_head, key);
  } catch (const std::exception& e) {
    why_not_[key] = std::string("cuDNN frontend: ") + e.what();
    slot.reset();
  }
  return slot.get();
}

std::unique_ptr<CudnnAttention::Graphs> CudnnAttention::make_graphs(int64_t b, int64_t t, int64_t c,
                                                                    int64_t n_head,
                                                                    const Key& key) {
  const Layout l(b, t, c, n_head);
  const float scale = scale_of(c, n_head);
  auto gs = std::make_unique<Graphs>();

  gs->forward = new_graph();
  {
    fe::graph::Graph& g = *gs->forward;
    const Tensor q = input(g, "q", kQ, l.dim, l.qkv_stride);
    const Tensor k = input(g, "k", kK, l.dim, l.qkv_stride);
    const Tensor v = input(g, "v", kV, l.dim, l.qkv_stride);
    auto [o, lse] = g.sdpa(q, k, v,
                           fe::graph::SDPA_attributes()
                               .set_name("attention")
                               .set_generate_stats(true)
                               .set_causal_mask(true)
                               .set_attn_scale(scale));
    o->set_output(true).set_uid(kO).set_dim(l.dim).set_stride(l.out_stride);
    lse->set_output(true)
        .set_uid(kLse)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim(l.lse_dim)
        .set_stride(l.lse_stride);
  }
  int64_t forward_ws = 0;
  if (std::string why = build(*gs->forward, handle_, forward_ws); !why.empty()) {
    why_not_[key] = "forward: " + why;
    return nullptr;
  }

  gs->backward = new_graph();
  {
    fe::graph::Graph& g = *gs->backward;
    const Tensor q = input(g, "q", kQ, l.dim, l.qkv_stride);
    const Tensor k = input(g, "k", kK, l.dim, l.qkv_stride);
    const Tensor v = input(g, "v", kV, l.dim, l.qkv_stride);
    const Tensor o = input(g, "o", kO, l.dim, l.out_stride);
    const Tensor d_o = input(g, "do", kDO, l.dim, l.out_stride);
    const Tensor lse = g.tensor(fe::graph::Tensor_attributes()
                                    .set_name("lse")
                                    .set_uid(kLse)
                                    .set_dim(l.lse_dim)
                                    .set_stride(l.lse_stride)
                                    .set_data_type(fe::DataType_t::FLOAT));
    auto [dq, dk, dv] = g.sdpa_backward(q, k, v, o, d_o, lse,
                                        fe::graph::SDPA_backward_attributes()
                                            .set_name("attention_backward")
                                            .set_causal_mask(true)
                                            .set_attn_scale(scale)
                                            .set_deterministic_algorithm(true));
    dq->set_output(true).set_uid(kDQ).set_dim(l.dim).set_stride(l.qkv_stride);
    dk->set_output(true).set_uid(kDK).set_dim(l.dim).set_stride(l.qkv_stride);
    dv->set_output(true).set_uid(kDV).set_dim(l.dim).set_stride(l.qkv_stride);
  }
  int64_t backward_ws = 0;
  if (std::string why = build(*gs->backward, handle_, backward_ws); !why.empty()) {
    why_not_[key] = "backward: " + why;
    return nullptr;
  }
  gs->workspace = std::max(forward_ws, backward_ws);
  return gs;
}

bool CudnnAttention::supported(int64_t b, int64_t t, int64_t c, int64_t n_head) {
  return graphs(b, t, c, n_head) != nullptr;
}

std::string CudnnAttention::why_not(int64_t b, int64_t t, int64_t c, int64_t n_head) const {
  const auto found = why_not_.find({b, t, c, n_head});
  return found == why_not_.end() ? std::string() : found->second;
}

size_t CudnnAttention::workspace_bytes(int64_t b, int64_t t, int64_t c, int64_t n_head) {
  const Graphs* gs = graphs(b, t, c, n_head);
  return gs ? static_cast<size_t>(gs->workspace) : 0;
}

void CudnnAttention::forward(const uint16_t* qkv, uint16_t* out, float* lse, void* workspace,
                             int64_t b, int64_t t, int64_t c, int64_t n_head) {
  Graphs* gs = graphs(b, t, c, n_head);
  if (!gs) throw SystemError("cuDNN attention: not supported at this size");
  auto* base = const_cast<uint16_t*>(qkv);
  std::unordered_map<int64_t, void*> pack{
      {kQ, base}, {kK, base + c}, {kV, base + 2 * c}, {kO, out}, {kLse, lse}};
  check(gs->forward->execute(handle_, pack, workspace), "forward");
}

void CudnnAttention::backward(const uint16_t* qkv, const uint16_t* out, const float* lse,
                              const uint16_t* dout, uint16_t* dqkv, void* workspace, int64_t b,
                              int64_t t, int64_t c, int64_t n_head) {
  Graphs* gs = graphs(b, t, c, n_head);
  if (!gs) throw SystemError("cuDNN attention: not supported at this size");
  auto* base = const_cast<uint16_t*>(qkv);
  std::unordered_map<int64_t, void*> pack{{kQ, base},
                                          {kK, base + c},
                                          {kV, base + 2 * c},
                                          {kO, const_cast<uint16_t*>(out)},
                                          {kDO, const_cast<uint16_t*>(dout)},
                                          {kLse, const_cast<float*>(lse)},
                                          {kDQ, dqkv},
                                          {kDK, dqkv + c},
                                          {kDV, dqkv + 2 * c}};
  check(gs->backward->execute(handle_, pack, workspace), "backward");
}

#else  // without the cudnn_frontend headers

struct CudnnAttention::Graphs {};

CudnnAttention::CudnnAttention(cudnnHandle_t handle) : handle_(handle), enabled_(false) {
  read_enabled();  // a bad value is still an error
}
CudnnAttention::~CudnnAttention() = default;
CudnnAttention::Graphs* CudnnAttention::graphs(int64_t, int64_t, int64_t, int64_t) {
  return nullptr;
}
bool CudnnAttention::supported(int64_t, int64_t, int64_t, int64_t) { return false; }
std::string CudnnAttention::why_not(int64_t, int64_t, int64_t, int64_t) const {
  return "this build has no cudnn_frontend";
}
size_t CudnnAttention::workspace_bytes(int64_t, int64_t, int64_t, int64_t) { return 0; }
void CudnnAttention::forward(const uint16_t*, uint16_t*, float*, void*, int64_t, int64_t, int64_t,
                             int64_t) {
  throw SystemError("cuDNN attention: this build has no cudnn_frontend");
}
void CudnnAttention::backward(const uint16_t*, const uint16_t*, const float*, const uint16_t*,
                              uint16_t*, void*, int64_t, int64_t, int64_t, int64_t) {
  throw SystemError("cuDNN attention: this build has no cudnn_frontend");
}

#endif

}  // namespace dpt::gpu
