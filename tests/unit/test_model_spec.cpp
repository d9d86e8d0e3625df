// Model specs: presets build PyTorch's layers and parameter names; spellings of the same spec
// build the same model; each malformed spec gets an InputError that says what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"

namespace {

using dpt::Shape;
using Strings = std::vector<std::string>;

const Shape kImage{1, 28, 28};

class ModelSpec : public testing::Test {
 protected:
  std::unique_ptr<dpt::Sequential> build(const std::string& spec, const Shape& input = kImage) {
    return std::make_unique<dpt::Sequential>(dpt::parse_model_spec(spec), *backend_, input);
  }
  // The layers as PyTorch prints them.
  Strings layers(const std::string& spec, const Shape& input = kImage) {
    const auto net = build(spec, input);
    Strings out;
    for (size_t i = 0; i < net->num_layers(); ++i) out.push_back(net->layer(i).describe());
    return out;
  }
  // "name shape" of each parameter tensor.
  Strings params(const std::string& spec, const Shape& input = kImage) {
    const auto net = build(spec, input);  // kept alive: a range-for would not extend its life
    Strings out;
    for (const dpt::ParamInfo& p : net->param_info())
      out.push_back(p.name + " " + dpt::shape_str(p.shape));
    return out;
  }
  // Building `spec` for `input` must throw InputError whose message has every phrase.
  void expect_error(const std::string& spec, const Strings& phrases, const Shape& input = kImage) {
    SCOPED_TRACE("spec \"" + spec + "\"");
    try {
      build(spec, input);
      ADD_FAILURE() << "no InputError";
    } catch (const dpt::InputError& e) {
      const std::string msg = e.what();
      for (const std::string& phrase : phrases)
        EXPECT_NE(msg.find(phrase), std::string::npos) << "no '" << phrase << "' in: " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }

  std::unique_ptr<dpt::Backend> backend_ = dpt::make_cpu_backend(1);
};

TEST_F(ModelSpec, MlpPreset) {
  EXPECT_EQ(params("mlp"), (Strings{"0.weight [256, 784]", "0.bias [256]", "2.weight [256, 256]",
                                    "2.bias [256]", "4.weight [10, 256]", "4.bias [10]"}));
  EXPECT_EQ(layers("mlp"), (Strings{"Linear(784, 256)", "ReLU()", "Linear(256, 256)", "ReLU()",
                                    "Linear(256, 10)"}));
  EXPECT_EQ(build("mlp")->num_outputs(), 10);
}

TEST_F(ModelSpec, CnnPreset) {
  EXPECT_EQ(params("cnn"),
            (Strings{"0.weight [32, 1, 3, 3]", "0.bias [32]", "3.weight [64, 32, 3, 3]",
                     "3.bias [64]", "7.weight [128, 3136]", "7.bias [128]", "9.weight [10, 128]",
                     "9.bias [10]"}));
  EXPECT_EQ(layers("cnn"),
            (Strings{"Conv2d(1, 32, kernel_size=3, stride=1, padding=1)", "ReLU()",
                     "MaxPool2d(kernel_size=2, stride=2)",
                     "Conv2d(32, 64, kernel_size=3, stride=1, padding=1)", "ReLU()",
                     "MaxPool2d(kernel_size=2, stride=2)", "Flatten()", "Linear(3136, 128)",
                     "ReLU()", "Linear(128, 10)"}));
  EXPECT_EQ(build("cnn")->num_outputs(), 10);
  EXPECT_EQ(dpt::parse_model_spec("cnn").size(), 10u);
}

TEST_F(ModelSpec, SpellingsOfTheSameSpec) {
  const Strings conv{"Conv2d(1, 8, kernel_size=3, stride=2, padding=1)", "ReLU()", "Flatten()",
                     "Linear(1568, 10)"};
  for (const char* spec : {"conv2d(8,3,2,1) relu flatten linear(10)",
                           "conv2d(8, 3, stride=2, pad=1), relu, flatten, linear(10)",
                           "CONV2D(8,3,padding=1,stride=2) ReLU Flatten Linear(10)",
                           "  conv2d( 8 , 3 , stride = 2 , padding = 1 ),,relu\tflatten linear(10) "})
    EXPECT_EQ(layers(spec), conv) << spec;
  // maxpool2d(3, stride=2) on 28x28: (28 - 3) / 2 + 1 = 13.
  EXPECT_EQ(layers("maxpool2d(3,stride=2) flatten dropout(0.25) linear(10)"),
            (Strings{"MaxPool2d(kernel_size=3, stride=2)", "Flatten()", "Dropout(p=0.25)",
                     "Linear(169, 10)"}));
  EXPECT_EQ(layers("dropout linear(10)")[0], "Dropout(p=0.5)");
  EXPECT_EQ(layers("dropout(p=0.1) linear(10)")[0], "Dropout(p=0.1)");
  EXPECT_EQ(layers("maxpool2d(2) linear(10)")[0], "MaxPool2d(kernel_size=2, stride=2)");
  EXPECT_EQ(dpt::expand_preset("mlp"), "linear(256) relu linear(256) relu linear(10)");
  EXPECT_EQ(dpt::expand_preset("linear(10)"), "linear(10)");
}

TEST_F(ModelSpec, MalformedSpecsThrowInputErrorNamingTheSpec) {
  const struct {
    const char* spec;
    const char* phrase;
  } cases[] = {
      {"linear(10) lstm(4)", "unknown layer 'lstm'"},
      {"foo", "unknown layer 'foo'"},
      {"linear(256", "missing ')'"},
      {"linear(ten)", "is not an integer"},
      {"linear(2.5)", "is not an integer"},
      {"conv2d(0,3) flatten linear(10)", "out 0 is out of range"},
      {"linear(-1)", "out of range"},
      {"linear(10,2)", "takes at most 1 arguments"},
      {"conv2d(8,3,strides=2) flatten linear(10)", "no argument 'strides'"},
      {"", "no layers"},
      {" , ", "no layers"},
      {"linear", "linear needs out"},
      {"linear()", "linear needs out"},
      {"relu(3) linear(10)", "relu takes no arguments"},
      {"flatten(1) linear(10)", "flatten takes no arguments"},
      {"linear(10) @", "unexpected character '@'"},
      {"linear(10,)", "empty argument"},
      {"conv2d(out=8, 3) flatten linear(10)", "positional argument after keyword"},
      {"dropout(1.5) linear(10)", "must be a number in [0"},
      {"linear(10))", "unbalanced ')' at position 11"},
      {") linear(10)", "unbalanced ')' at position 1"},
      {"residual(linear(10) linear(10)", "missing ')' to close the '(' at position 9"},
      {"residual(relu residual(linear(10)) linear(10)",
       "missing ')' to close the '(' at position 9"},
      {"linear(8) residual(relu residual(linear(8)", "missing ')' to close the '(' at position 33"},
      {"residual() linear(10)", "residual() has an empty body"},
      {"linear(8) residual( , ) linear(10)", "residual( , ) has an empty body"},
      {"residual(relu residual()) linear(10)", "residual() has an empty body"},
      {"residual(relu lstm(4)) linear(10)", "unknown layer 'lstm'"},
      {"residual(relu residual(foo)) linear(10)", "unknown layer 'foo'"},
      {"residual(linear(ten)) linear(10)", "is not an integer"},
      {"residual linear(10)", "residual needs its layers in parentheses"},
      {"linear(8) residual", "residual needs its layers in parentheses"},
      {"residual(64) linear(10)", "unknown layer '64'"},
      {"linear(residual(relu)) linear(10)", "unexpected '(' inside linear()"},
      {"residual(relu @) linear(10)", "unexpected character '@' at position 15"},
  };
  for (const auto& c : cases) {
    std::string quoted = "\"";  // built with += : GCC 12 gives a false -Wrestrict for "\"" + s
    quoted += c.spec;
    quoted += '"';
    expect_error(c.spec, {quoted, c.phrase});
  }
}

// Nested residual blocks: 33 levels is past the limit, 32 is within it.
TEST_F(ModelSpec, ResidualNestingIsBounded) {
  const auto nested = [](int depth) {
    std::string s;
    for (int i = 0; i < depth; ++i) s += "residual(";
    s += "relu";
    for (int i = 0; i < depth; ++i) s += ")";
    return s + " linear(10)";
  };
  EXPECT_EQ(build(nested(32), Shape{4})->param_info().back().name, "1.bias");
  expect_error(nested(33), {"residual blocks nest deeper than 32"}, Shape{4});
}

// These parse, but the layers do not fit the samples. Sequential never sees the spec text, so
// only the problem is checked here; that the CLI's line names the spec is an e2e check
// (cli.bad_input.spec_not_fitting_input).
TEST_F(ModelSpec, SpecsThatDoNotFitTheInputThrowInputError) {
  expect_error("conv2d(4,3) flatten linear(10)", {"conv2d needs [channels, height, width]", "[784]"},
               Shape{784});
  expect_error("conv2d(4,29) flatten linear(10)", {"kernel 29 does not fit input [1, 28, 28]"});
  // With stride 2, (28 - 29) / 2 + 1 truncates to 1: the check must not rely on that division.
  expect_error("conv2d(4,29,stride=2) flatten linear(10)", {"kernel 29 does not fit input"});
  expect_error("maxpool2d(29) flatten linear(10)", {"window 29 does not fit input"});
  expect_error("conv2d(4,3)", {"last layer must give flat outputs", "[4, 26, 26]"});
  // The block is named as the spec wrote it, so that the message points at the right one.
  expect_error("linear(64) residual(linear(64) relu linear(32)) linear(10)",
               {"residual(linear(64) relu linear(32)): body maps [64] to [32]; a residual block "
                "must keep the shape"});
  expect_error("residual(flatten) linear(10)",
               {"residual(flatten): body maps [1, 28, 28] to [784]"});
  expect_error("linear(8) residual(relu residual(linear(4)) linear(8)) linear(10)",
               {"residual(linear(4)): body maps [8] to [4]"});
  expect_error("linear(8) residual(conv2d(2,3)) linear(10)",
               {"conv2d needs [channels, height, width]", "[8]"});
}

// The example of the README: PyTorch's
//   nn.Sequential(nn.Linear(784, 64), Residual(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64)),
//                 nn.Linear(64, 10))
// with class Residual(nn.Sequential) names its tensors so.
TEST_F(ModelSpec, ResidualBlockNamesNestAsInPyTorch) {
  const std::string spec = "linear(64) residual(linear(64) relu linear(64)) linear(10)";
  EXPECT_EQ(params(spec),
            (Strings{"0.weight [64, 784]", "0.bias [64]", "1.0.weight [64, 64]", "1.0.bias [64]",
                     "1.2.weight [64, 64]", "1.2.bias [64]", "2.weight [10, 64]", "2.bias [10]"}));
  EXPECT_EQ(layers(spec),
            (Strings{"Linear(784, 64)", "Residual(Linear(64, 64), ReLU(), Linear(64, 64))",
                     "Linear(64, 10)"}));
  const auto net = build(spec);
  ASSERT_EQ(net->num_layers(), 3u);
  EXPECT_EQ(net->num_outputs(), 10);
  // The block is one stage of backward: its tensors belong to top-level layer 1. They follow
  // one another in the flat buffers, and each is initialised from its own fan-in, as PyTorch's
  // Linear does.
  std::vector<int> stage;
  size_t end = 0;
  for (const dpt::ParamInfo& p : net->param_info()) {
    stage.push_back(p.layer);
    EXPECT_GE(p.elem_offset, end) << p.name;
    end = p.elem_offset + p.numel;
    const float fan_in = static_cast<float>(p.name[0] == '0' ? 784 : 64);
    EXPECT_EQ(p.init.kind, dpt::Init::Kind::Uniform) << p.name;
    EXPECT_FLOAT_EQ(p.init.value, 1.0f / std::sqrt(fan_in)) << p.name;
  }
  EXPECT_EQ(stage, (std::vector<int>{0, 0, 1, 1, 1, 1, 2, 2}));
  EXPECT_LE(end, net->flat_size());
}

TEST_F(ModelSpec, NestedResidualBlocks) {
  const std::string spec = "residual(linear(8) relu residual(relu linear(8)) linear(16)) linear(3)";
  EXPECT_EQ(params(spec, Shape{16}),
            (Strings{"0.0.weight [8, 16]", "0.0.bias [8]", "0.2.1.weight [8, 8]", "0.2.1.bias [8]",
                     "0.3.weight [16, 8]", "0.3.bias [16]", "1.weight [3, 16]", "1.bias [3]"}));
  EXPECT_EQ(layers(spec, Shape{16})[0],
            "Residual(Linear(16, 8), ReLU(), Residual(ReLU(), Linear(8, 8)), Linear(8, 16))");
  // Spelled with commas and capitals, it is the same model.
  EXPECT_EQ(params("RESIDUAL( linear(8), relu, Residual(relu,linear(8)),linear(16) ),linear(3)",
                   Shape{16}),
            params(spec, Shape{16}));
  // The summary shows the tree with each child's output shape and parameter count.
  EXPECT_EQ(build(spec, Shape{16})->summary(),
            "  input [16]\n"
            "  (0) Residual -> [16]  params 352\n"
            "    (0) Linear(16, 8) -> [8]  params 136\n"
            "    (1) ReLU() -> [8]\n"
            "    (2) Residual -> [8]  params 72\n"
            "      (0) ReLU() -> [8]\n"
            "      (1) Linear(8, 8) -> [8]  params 72\n"
            "    (3) Linear(8, 16) -> [16]  params 144\n"
            "  (1) Linear(16, 3) -> [3]  params 51\n"
            "  total parameters 403");
}

TEST_F(ModelSpec, ConvolutionalResidualBlock) {
  const std::string spec =
      "conv2d(4,3,pad=1) residual(conv2d(4,3,pad=1) relu conv2d(4,3,pad=1)) relu maxpool2d(2) "
      "flatten linear(10)";
  EXPECT_EQ(params(spec), (Strings{"0.weight [4, 1, 3, 3]", "0.bias [4]", "1.0.weight [4, 4, 3, 3]",
                                   "1.0.bias [4]", "1.2.weight [4, 4, 3, 3]", "1.2.bias [4]",
                                   "5.weight [10, 784]", "5.bias [10]"}));
  EXPECT_EQ(layers(spec)[1],
            "Residual(Conv2d(4, 4, kernel_size=3, stride=1, padding=1), ReLU(), "
            "Conv2d(4, 4, kernel_size=3, stride=1, padding=1))");
}

}  // namespace
