#include "src/model/model_spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include "src/core/error.hpp"
#include "src/model/activations.hpp"
#include "src/model/conv2d.hpp"
#include "src/model/gpt.hpp"
#include "src/model/linear.hpp"
#include "src/model/maxpool2d.hpp"
#include "src/model/residual.hpp"

namespace dpt {
namespace {

const std::map<std::string, std::string>& presets() {
  static const std::map<std::string, std::string> p = {
      {"mlp", "linear(256) relu linear(256) relu linear(10)"},
      {"cnn",
       "conv2d(32,3,pad=1) relu maxpool2d(2) conv2d(64,3,pad=1) relu maxpool2d(2) flatten "
       "linear(128) relu linear(10)"},
      // GPT-2 small, 124M parameters.
      {"gpt2", "gpt(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257)"},
  };
  return p;
}

struct LayerCall {
  std::string name;
  std::vector<std::string> positional;
  std::map<std::string, std::string> keywords;
  std::vector<LayerCall> body;  // the layers inside residual(...)
  std::string text;             // the call as the spec wrote it
};

// Blocks nest at most this deep; deeper is surely a mistake, and recursion stays bounded.
constexpr int kMaxDepth = 32;
// A gpt's blocks, at most (GPT-3 has 96).
constexpr int kMaxGptLayers = 1024;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

class SpecParser {
 public:
  explicit SpecParser(const std::string& spec) : spec_(spec) {}

  // Parses the whole spec into top().
  void parse() {
    top_ = parse_sequence(std::string::npos, 0);
    if (top_.empty()) fail("no layers");
  }
  // The spec's top-level layer calls (after parse()).
  const std::vector<LayerCall>& top() const { return top_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("model spec \"" + spec_ + "\": " + what);
  }

 private:
  void skip_separators() {
    while (pos_ < spec_.size() &&
           (std::isspace(static_cast<unsigned char>(spec_[pos_])) || spec_[pos_] == ','))
      ++pos_;
  }

  // Layers up to the end of the spec, or, inside the block whose '(' is at `open`, up to and
  // including its ')'.
  std::vector<LayerCall> parse_sequence(size_t open, int depth) {
    std::vector<LayerCall> calls;
    const bool nested = open != std::string::npos;
    for (skip_separators();; skip_separators()) {
      if (pos_ == spec_.size()) {
        if (nested) fail("missing ')' to close the '(' at position " + std::to_string(open + 1));
        return calls;
      }
      if (spec_[pos_] == ')') {
        if (!nested) fail("unbalanced ')' at position " + std::to_string(pos_ + 1));
        ++pos_;
        return calls;
      }
      calls.push_back(parse_call(depth));
    }
  }

  LayerCall parse_call(int depth) {
    LayerCall call;
    const size_t start = pos_;
    while (pos_ < spec_.size() &&
           (std::isalnum(static_cast<unsigned char>(spec_[pos_])) || spec_[pos_] == '_'))
      ++pos_;
    if (pos_ == start)
      fail("unexpected character '" + std::string(1, spec_[pos_]) + "' at position " +
           std::to_string(pos_ + 1));
    call.name = spec_.substr(start, pos_ - start);
    std::transform(call.name.begin(), call.name.end(), call.name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (call.name == "residual") {
      if (pos_ == spec_.size() || spec_[pos_] != '(')
        fail("residual needs its layers in parentheses, e.g. residual(linear(64) relu)");
      if (depth + 1 > kMaxDepth)
        fail("residual blocks nest deeper than " + std::to_string(kMaxDepth));
      call.body = parse_sequence(pos_++, depth + 1);
      call.text = spec_.substr(start, pos_ - start);
      if (call.body.empty())
        fail(call.text + " has an empty body; give it layers, e.g. residual(linear(64) relu)");
      return call;
    }
    if (pos_ < spec_.size() && spec_[pos_] == '(') {
      const size_t close = spec_.find(')', pos_);
      if (close == std::string::npos) fail("missing ')' after " + call.name + "(");
      const std::string inside = spec_.substr(pos_ + 1, close - pos_ - 1);
      if (inside.find('(') != std::string::npos) fail("unexpected '(' inside " + call.name + "()");
      pos_ = close + 1;
      size_t a = 0;
      while (a <= inside.size() && !trim(inside).empty()) {
        size_t comma = inside.find(',', a);
        if (comma == std::string::npos) comma = inside.size();
        const std::string arg = trim(inside.substr(a, comma - a));
        if (arg.empty()) fail("empty argument in " + call.name + "(" + inside + ")");
        const auto eq = arg.find('=');
        if (eq == std::string::npos) {
          if (!call.keywords.empty())
            fail("positional argument after keyword in " + call.name + "(" + inside + ")");
          call.positional.push_back(arg);
        } else {
          const std::string key = trim(arg.substr(0, eq));
          if (!call.keywords.emplace(key, trim(arg.substr(eq + 1))).second)
            fail(call.name + " is given '" + key + "' twice");
        }
        a = comma + 1;
        if (comma == inside.size()) break;
      }
    }
    call.text = spec_.substr(start, pos_ - start);
    return call;
  }

  const std::string& spec_;
  size_t pos_ = 0;
  std::vector<LayerCall> top_;
};

// Reads the arguments of one layer call by position or keyword, with range checks.
class Args {
 public:
  Args(const SpecParser& parser, const LayerCall& call, std::vector<std::string> names)
      : parser_(parser), call_(call), names_(std::move(names)) {
    if (call.positional.size() > names_.size())
      parser.fail(call.name + " takes at most " + std::to_string(names_.size()) +
                  " arguments, got " + std::to_string(call.positional.size()));
    for (const auto& [key, value] : call.keywords) {
      const std::string k = key == "padding" ? "pad" : key;
      if (std::find(names_.begin(), names_.end(), k) == names_.end())
        parser.fail(call.name + " has no argument '" + key + "'");
    }
  }

  const std::string* raw(size_t index) const {
    if (index < call_.positional.size()) return &call_.positional[index];
    const std::string& n = names_[index];
    for (const auto& [key, value] : call_.keywords)
      if (key == n || (n == "pad" && key == "padding")) return &value;
    return nullptr;
  }

  int integer(size_t index, int fallback, int min_value, bool required = false,
              int max_value = 1 << 20) const {
    const std::string* s = raw(index);
    if (!s) {
      if (required) parser_.fail(call_.name + " needs " + names_[index]);
      return fallback;
    }
    int v = 0;
    const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end != s->data() + s->size())
      parser_.fail(call_.name + " " + names_[index] + " '" + *s + "' is not an integer");
    if (v < min_value || v > max_value)
      parser_.fail(call_.name + " " + names_[index] + " " + *s + " is out of range [" +
                   std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
    return v;
  }

  float real(size_t index, float fallback, float lo, float hi) const {
    const std::string* s = raw(index);
    if (!s) return fallback;
    float v = 0;
    const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end != s->data() + s->size() || !(v >= lo && v < hi))
      parser_.fail(call_.name + " " + names_[index] + " '" + *s + "' must be a number in [" +
                   std::to_string(lo) + ", " + std::to_string(hi) + ")");
    return v;
  }

 private:
  const SpecParser& parser_;
  const LayerCall& call_;
  std::vector<std::string> names_;
};

}  // namespace

std::string expand_preset(const std::string& model) {
  const auto it = presets().find(model);
  return it == presets().end() ? model : it->second;
}

namespace {

std::vector<std::unique_ptr<Layer>> build_layers(const SpecParser& parser,
                                                 const std::vector<LayerCall>& calls,
                                                 const std::string& spec) {
  std::vector<std::unique_ptr<Layer>> layers;
  for (const LayerCall& call : calls) {
    const bool has_args = !call.positional.empty() || !call.keywords.empty();
    if (call.name == "gpt") {
      // A whole model: its layers carry nanoGPT's names, and it takes token ids.
      if (calls.size() != 1 || &calls != &parser.top())
        parser.fail("gpt(...) is a whole model and must be the spec's only layer");
      if (!call.positional.empty())
        parser.fail(
            "gpt takes its arguments by name, e.g. gpt(n_layer=4, n_head=4, n_embd=128, "
            "block_size=128, vocab_size=256)");
      const Args a(parser, call,
                   {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "dropout"});
      GptConfig c;
      // Each block is a handful of objects before any tensor exists: bound their number.
      c.n_layer = a.integer(0, 0, 1, true, kMaxGptLayers);
      c.n_head = a.integer(1, 0, 1, true);
      c.n_embd = a.integer(2, 0, 1, true);
      c.block_size = a.integer(3, 0, 1, true);
      c.vocab_size = a.integer(4, 0, 1, true);
      c.dropout = a.real(5, 0.0f, 0.0f, 1.0f);
      return make_gpt(c, "model spec \"" + spec + "\"");
    }
    if (call.name == "linear") {
      Args a(parser, call, {"out"});
      layers.push_back(std::make_unique<Linear>(a.integer(0, 0, 1, true)));
    } else if (call.name == "conv2d") {
      Args a(parser, call, {"out", "kernel", "stride", "pad"});
      const int out = a.integer(0, 0, 1, true), k = a.integer(1, 0, 1, true);
      layers.push_back(std::make_unique<Conv2d>(out, k, a.integer(2, 1, 1), a.integer(3, 0, 0)));
    } else if (call.name == "maxpool2d") {
      Args a(parser, call, {"kernel", "stride"});
      const int k = a.integer(0, 0, 1, true);
      layers.push_back(std::make_unique<MaxPool2d>(k, a.integer(1, k, 1)));
    } else if (call.name == "relu" || call.name == "flatten") {
      if (has_args) parser.fail(call.name + " takes no arguments");
      if (call.name == "relu")
        layers.push_back(std::make_unique<ReLU>());
      else
        layers.push_back(std::make_unique<Flatten>());
    } else if (call.name == "dropout") {
      Args a(parser, call, {"p"});
      layers.push_back(std::make_unique<Dropout>(a.real(0, 0.5f, 0.0f, 1.0f)));
    } else if (call.name == "residual") {
      layers.push_back(
          std::make_unique<Residual>(build_layers(parser, call.body, spec), call.text));
    } else {
      parser.fail("unknown layer '" + call.name +
                  "' (known: linear, conv2d, maxpool2d, relu, flatten, dropout, residual(...), "
                  "gpt(...); presets: mlp, cnn, gpt2)");
    }
  }
  return layers;
}

}  // namespace

std::vector<std::unique_ptr<Layer>> parse_model_spec(const std::string& model) {
  const std::string spec = expand_preset(model);
  SpecParser parser(spec);
  parser.parse();
  return build_layers(parser, parser.top(), spec);
}

}  // namespace dpt
