// The loss object (src/model/loss.hpp) on the CPU backend against a float64 reference written
// here, at a classifier's 10 classes and at GPT-2's vocabulary of 50,257, with ignored rows; and
// what becomes of a target that is no class.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"
#include "src/model/loss.hpp"
#include "tests/common/expect_input_error.hpp"

namespace dpt {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> backend = make_cpu_backend(1);
  return *backend;
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Rows of logits uniform in (-bound, bound) from stream `seed`, row r shifted by offset[r % 3]:
// large shifts check that the max is taken out before exp (exp(100) overflows a float). The
// factor 0.987654 takes the values off the grid of 2^-24 steps that uniform_float draws from,
// where differences of logits would be exact floats and the rounding bounded below never happen.
std::vector<float> make_logits(int rows, int classes, float bound, uint64_t seed) {
  const float offset[3] = {0.0f, 100.0f, -40.0f};
  std::vector<float> x(static_cast<size_t>(rows) * classes);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = offset[(i / classes) % 3] + bound * 0.987654f * (2.0f * uniform_float(seed, i) - 1.0f);
  return x;
}

int first_argmax(const float* row, int classes) {
  int arg = 0;
  for (int c = 1; c < classes; ++c)
    if (row[c] > row[arg]) arg = c;
  return arg;
}

// The definition, in double throughout.
struct Reference {
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  std::vector<double> prob, dlogits;  // prob: the softmax of counted rows (0 elsewhere)
};

Reference reference(const std::vector<float>& logits, const std::vector<int32_t>& targets,
                    int classes, int32_t ignore_index, double scale) {
  Reference ref;
  ref.prob.assign(logits.size(), 0.0);
  ref.dlogits.assign(logits.size(), 0.0);
  for (size_t r = 0; r < targets.size(); ++r) {
    const int32_t t = targets[r];
    if (t == ignore_index) continue;
    const float* row = logits.data() + r * classes;
    const int arg = first_argmax(row, classes);
    const double mx = row[arg];
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c]) - mx);
    ref.loss_sum += std::log(sum) - (static_cast<double>(row[t]) - mx);
    ++ref.count;
    ref.correct += arg == t;
    for (int c = 0; c < classes; ++c) {
      const double p = std::exp(static_cast<double>(row[c]) - mx) / sum;
      ref.prob[r * classes + c] = p;
      ref.dlogits[r * classes + c] = (p - (c == t ? 1.0 : 0.0)) * scale;
    }
  }
  return ref;
}

// The backend rounds each row[c] - max to float before exp, an absolute error of at most
// e = 2^-24 * |row[c] - max| <= 2^-24 * 2 * bound; everything after that is in double, whose
// roundings (about 1e-16 per operation, 50,257 additions) stay below 1e-11 here. So:
// - per row, log(sum) moves by at most e (every term of the sum by a factor within exp(+-e)) and
//   the target's logit by e: the loss sum is within 2e per counted row;
// - prob moves by a factor exp(+-2e) (numerator and sum) and is rounded to float (2^-24);
//   prob - onehot and the product with the scale are rounded to float (2^-24 of each result):
//   |d - ref| <= scale * (p * (2e + 2^-24) + 2 * 2^-24 * |p - onehot|).
// The checks allow twice these bounds. No BLAS call is involved, so no OpenBLAS kernel changes
// them.
void expect_matches_reference(const std::vector<float>& logits, const std::vector<int32_t>& targets,
                              int classes, float bound, int32_t ignore_index,
                              const std::string& what) {
  SCOPED_TRACE(what);
  const int rows = static_cast<int>(targets.size());
  const float scale = 1.0f / static_cast<float>(rows + 1);  // not a power of two: it rounds
  std::vector<float> d(logits.size(), kNaN);                // NaN: an element left out shows
  const SoftmaxCrossEntropy loss(ignore_index);
  const LossResult got =
      loss.compute(cpu(), logits.data(), targets.data(), rows, classes, classes, scale, d.data());
  const Reference ref = reference(logits, targets, classes, ignore_index, scale);

  EXPECT_EQ(got.count, ref.count);
  EXPECT_EQ(got.correct, ref.correct);
  EXPECT_EQ(got.invalid, 0);
  const double u = std::ldexp(1.0, -24), e = u * 2.0 * bound;
  EXPECT_NEAR(got.loss_sum, ref.loss_sum, 2.0 * (2.0 * e * static_cast<double>(ref.count) + 1e-11));

  // Without the gradient: the same totals, bit for bit.
  const LossResult plain =
      loss.compute(cpu(), logits.data(), targets.data(), rows, classes, classes, 0.0f, nullptr);
  EXPECT_EQ(std::memcmp(&plain.loss_sum, &got.loss_sum, sizeof(double)), 0);
  EXPECT_EQ(plain.count, got.count);
  EXPECT_EQ(plain.correct, got.correct);

  size_t wrong = 0, first_wrong = 0, ignored_nonzero = 0;
  double worst = 0;  // largest |d - ref| / bound
  for (size_t r = 0; r < targets.size(); ++r)
    for (int c = 0; c < classes; ++c) {
      const size_t i = r * classes + c;
      if (targets[r] == ignore_index) {
        // Exactly zero, and positive zero: an ignored row adds nothing to any gradient.
        const float zero = 0.0f;
        ignored_nonzero += std::memcmp(&d[i], &zero, sizeof(float)) != 0;
        continue;
      }
      const double p = ref.prob[i], y = c == targets[r] ? 1.0 : 0.0;
      const double tol = 2.0 * (scale * (p * (2.0 * e + u) + 2.0 * u * std::fabs(p - y)) + 1e-15);
      const double err = std::fabs(d[i] - ref.dlogits[i]);  // NaN fails below too
      worst = std::max(worst, err / tol);
      if (!(err <= tol) && wrong++ == 0) first_wrong = i;
    }
  EXPECT_EQ(ignored_nonzero, 0u) << "gradient elements of ignored rows that are not +0";
  EXPECT_EQ(wrong, 0u) << "first at row " << first_wrong / classes << " class "
                       << first_wrong % classes << ": " << d[first_wrong] << " against "
                       << ref.dlogits[first_wrong];
  EXPECT_LT(worst, 1.0);
}

// Targets: random classes, the ignore index in the rows listed, and the row's own arg-max in
// the rows listed (so that `correct` is not always 0 at 50,257 classes).
std::vector<int32_t> make_targets(const std::vector<float>& logits, int rows, int classes,
                                  uint64_t seed, const std::vector<int>& ignored,
                                  const std::vector<int>& hits, int32_t ignore_index) {
  std::vector<int32_t> t(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r)
    t[r] = static_cast<int32_t>(random_u64(seed, static_cast<uint64_t>(r)) % classes);
  for (const int r : hits)
    t[r] = first_argmax(logits.data() + static_cast<size_t>(r) * classes, classes);
  for (const int r : ignored) t[r] = ignore_index;
  return t;
}

TEST(SoftmaxCrossEntropyLoss, TenClassesWithIgnoredRows) {
  const int rows = 64, classes = 10;
  const float bound = 6.0f;
  const std::vector<float> logits = make_logits(rows, classes, bound, 11);
  const std::vector<int32_t> targets =
      make_targets(logits, rows, classes, 12, {0, 5, 6, 31, 63}, {1, 2, 3}, kIgnoreIndex);
  expect_matches_reference(logits, targets, classes, bound, kIgnoreIndex, "10 classes");
  const Reference ref = reference(logits, targets, classes, kIgnoreIndex, 1.0);
  EXPECT_EQ(ref.count, rows - 5);
  EXPECT_GE(ref.correct, 3);
}

TEST(SoftmaxCrossEntropyLoss, VocabularySizedRowsWithIgnoredRows) {
  const int rows = 6, classes = 50257;
  const float bound = 8.0f;
  const std::vector<float> logits = make_logits(rows, classes, bound, 21);
  const std::vector<int32_t> targets =
      make_targets(logits, rows, classes, 22, {2, 4}, {1}, kIgnoreIndex);
  expect_matches_reference(logits, targets, classes, bound, kIgnoreIndex, "50257 classes");
  const Reference ref = reference(logits, targets, classes, kIgnoreIndex, 1.0);
  EXPECT_EQ(ref.count, 4);
  EXPECT_GE(ref.correct, 1);
  // Near log(50257) per row for logits this flat: the reference is about the right thing.
  EXPECT_NEAR(ref.loss_sum / 4, std::log(50257.0), 4.0);
}

TEST(SoftmaxCrossEntropyLoss, IgnoreIndexMayBeAClass) {
  // PyTorch allows any ignore_index; one inside [0, classes) takes that class's rows out.
  const int rows = 40, classes = 10;
  const std::vector<float> logits = make_logits(rows, classes, 4.0f, 31);
  const std::vector<int32_t> targets = make_targets(logits, rows, classes, 32, {}, {}, 3);
  const int64_t threes = std::count(targets.begin(), targets.end(), 3);
  ASSERT_GT(threes, 0);
  expect_matches_reference(logits, targets, classes, 4.0f, 3, "ignore index 3");
  const LossResult r = SoftmaxCrossEntropy(3).compute(cpu(), logits.data(), targets.data(), rows,
                                                      classes, classes, 0.0f, nullptr);
  EXPECT_EQ(r.count, rows - threes);
}

// Skipping a row changes nothing for the others: the counted rows give the same bits as when
// they are alone (the loss adds them in the same order).
TEST(SoftmaxCrossEntropyLoss, IgnoredRowsLeaveTheOthersBitForBit) {
  const int rows = 12, classes = 37;
  const std::vector<float> logits = make_logits(rows, classes, 5.0f, 41);
  const std::vector<int32_t> targets =
      make_targets(logits, rows, classes, 42, {0, 3, 4, 11}, {5}, kIgnoreIndex);
  std::vector<float> kept_logits;
  std::vector<int32_t> kept_targets;
  for (int r = 0; r < rows; ++r)
    if (targets[r] != kIgnoreIndex) {
      kept_targets.push_back(targets[r]);
      kept_logits.insert(kept_logits.end(), logits.begin() + r * classes,
                         logits.begin() + (r + 1) * classes);
    }
  const SoftmaxCrossEntropy loss;
  const float scale = 0.1f;
  std::vector<float> d_all(logits.size()), d_kept(kept_logits.size());
  const LossResult all = loss.compute(cpu(), logits.data(), targets.data(), rows, classes, classes,
                                      scale, d_all.data());
  const LossResult kept =
      loss.compute(cpu(), kept_logits.data(), kept_targets.data(),
                   static_cast<int>(kept_targets.size()), classes, classes, scale, d_kept.data());
  EXPECT_EQ(std::memcmp(&all.loss_sum, &kept.loss_sum, sizeof(double)), 0);
  EXPECT_EQ(all.count, 8);
  EXPECT_EQ(kept.count, 8);
  EXPECT_EQ(all.correct, kept.correct);
  size_t k = 0;
  for (int r = 0; r < rows; ++r) {
    if (targets[r] == kIgnoreIndex) continue;
    EXPECT_EQ(std::memcmp(d_all.data() + r * classes, d_kept.data() + (k++) * classes,
                          sizeof(float) * classes),
              0)
        << "row " << r;
  }
}

TEST(SoftmaxCrossEntropyLoss, EveryRowIgnored) {
  const int rows = 3, classes = 5;
  const std::vector<float> logits = make_logits(rows, classes, 1.0f, 51);
  const std::vector<int32_t> targets(rows, kIgnoreIndex);
  std::vector<float> d(logits.size(), kNaN);
  const LossResult r = SoftmaxCrossEntropy().compute(cpu(), logits.data(), targets.data(), rows,
                                                     classes, classes, 1.0f, d.data());
  EXPECT_EQ(r.loss_sum, 0.0);
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.correct, 0);
  EXPECT_EQ(std::count(d.begin(), d.end(), 0.0f), static_cast<std::ptrdiff_t>(d.size()));
  // And no rows at all.
  const LossResult none = SoftmaxCrossEntropy().compute(cpu(), logits.data(), targets.data(), 0,
                                                        classes, classes, 1.0f, nullptr);
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(none.loss_sum, 0.0);
}

// A target that is neither a class nor the ignore index: the backend op skips the row (zero
// gradient, not counted) and counts it as invalid; the loss object refuses it with an
// InputError naming the row and the target.
TEST(SoftmaxCrossEntropyLoss, TargetOutsideTheClasses) {
  const int rows = 4, classes = 10;
  const std::vector<float> logits = make_logits(rows, classes, 2.0f, 61);
  for (const int32_t bad : {10, 11, -1, -99, -101}) {
    SCOPED_TRACE("target " + std::to_string(bad));
    const std::vector<int32_t> targets = {4, kIgnoreIndex, bad, 7};
    std::vector<float> d(logits.size(), kNaN);
    const LossResult r = cpu().softmax_cross_entropy(logits.data(), targets.data(), rows, classes,
                                                     classes, kIgnoreIndex, 1.0f, d.data());
    EXPECT_EQ(r.invalid, 1);
    EXPECT_EQ(r.count, 2);
    EXPECT_EQ(std::count(d.begin() + 2 * classes, d.begin() + 3 * classes, 0.0f), classes);
    // Otherwise as if the row were ignored, to the bit.
    const std::vector<int32_t> as_ignored = {4, kIgnoreIndex, kIgnoreIndex, 7};
    const LossResult ignored = cpu().softmax_cross_entropy(
        logits.data(), as_ignored.data(), rows, classes, classes, kIgnoreIndex, 1.0f, nullptr);
    EXPECT_EQ(std::memcmp(&r.loss_sum, &ignored.loss_sum, sizeof(double)), 0);
    EXPECT_EQ(r.correct, ignored.correct);

    testing::expect_input_error(
        [&] {
          SoftmaxCrossEntropy().compute(cpu(), logits.data(), targets.data(), rows, classes,
                                        classes, 1.0f, d.data());
        },
        "softmax_cross_entropy: target " + std::to_string(bad) + " of row 2 ",
        "is not a class of 10 (0 to 9) nor the ignore index -100");
  }
  // The ignore index of another loss is a bad target here.
  const std::vector<int32_t> targets = {1, 2, kIgnoreIndex, 3};
  testing::expect_input_error(
      [&] {
        SoftmaxCrossEntropy(-1).compute(cpu(), logits.data(), targets.data(), rows, classes,
                                        classes, 1.0f, nullptr);
      },
      "softmax_cross_entropy: target -100 of row 2 ", "nor the ignore index -1");
  testing::expect_input_error(
      [&] {
        SoftmaxCrossEntropy().compute(cpu(), logits.data(), targets.data(), rows, 0, 0, 1.0f,
                                      nullptr);
      },
      "softmax_cross_entropy: ", "classes >= 1");
}

// The deferred loss of a training step: the totals of every deferred call since the last take,
// the same sums in the same order as the immediate calls', and the same gradients.
TEST(SoftmaxCrossEntropyLoss, DeferredLossesAddUpUntilTaken) {
  const int rows = 6, classes = 11;
  const SoftmaxCrossEntropy loss;
  loss.take(cpu());  // nothing from another test
  LossResult want;
  std::vector<float> d_now(rows * classes), d_later(rows * classes, kNaN);
  for (uint64_t seed : {71, 72, 73}) {
    const std::vector<float> logits = make_logits(rows, classes, 3.0f, seed);
    std::vector<int32_t> targets(rows);
    for (int i = 0; i < rows; ++i) targets[i] = static_cast<int32_t>(random_u64(seed, i) % 11);
    targets[1] = kIgnoreIndex;
    const LossResult r = loss.compute(cpu(), logits.data(), targets.data(), rows, classes, classes,
                                      0.5f, d_now.data());
    want.loss_sum += r.loss_sum;
    want.count += r.count;
    want.correct += r.correct;
    loss.compute_deferred(cpu(), logits.data(), targets.data(), rows, classes, classes, 0.5f,
                          d_later.data());
    EXPECT_EQ(std::memcmp(d_now.data(), d_later.data(), sizeof(float) * d_now.size()), 0);
  }
  const LossResult got = loss.take(cpu());
  EXPECT_EQ(std::memcmp(&got.loss_sum, &want.loss_sum, sizeof(double)), 0);
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.count, 3 * (rows - 1));
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_EQ(got.invalid, 0);
  const LossResult none = loss.take(cpu());  // taken: zero again
  EXPECT_EQ(none.loss_sum, 0.0);
  EXPECT_EQ(none.count, 0);

  // A bad target shows when the totals are taken, counted, and the sum is gone with it.
  const std::vector<float> logits = make_logits(rows, classes, 3.0f, 74);
  const std::vector<int32_t> bad = {0, 1, 2, 11, 4, 12};
  loss.compute_deferred(cpu(), logits.data(), bad.data(), rows, classes, classes, 1.0f, nullptr);
  testing::expect_input_error([&] { loss.take(cpu()); },
                              "softmax_cross_entropy: 2 targets were neither a class ",
                              "nor the ignore index -100");
  EXPECT_EQ(loss.take(cpu()).count, 0);
}

// Rows `ld` elements apart (a gpt's head pads its rows to a multiple of 64): the same totals and
// gradients, bit for bit, as the rows packed, and the elements between the rows neither read
// (NaN there changes nothing) nor written; in float32 and through the bf16 twin.
TEST(SoftmaxCrossEntropyLoss, RowsApartGiveWhatPackedRowsGive) {
  const int rows = 7, classes = 50, ld = 64;
  const std::vector<float> packed = make_logits(rows, classes, 3.0f, 81);
  std::vector<int32_t> targets(rows);
  for (int i = 0; i < rows; ++i) targets[i] = static_cast<int32_t>(random_u64(82, i) % classes);
  targets[2] = kIgnoreIndex;
  std::vector<float> apart(static_cast<size_t>(rows) * ld, kNaN);
  for (int r = 0; r < rows; ++r)
    std::copy_n(packed.begin() + r * classes, classes, apart.begin() + r * ld);
  const float between = -7.5f;  // what dlogits holds between the rows before the call
  const auto pad_dlogits = [&] {
    std::vector<float> d(apart.size(), kNaN);
    for (int r = 0; r < rows; ++r) std::fill_n(d.begin() + r * ld + classes, ld - classes, between);
    return d;
  };
  const SoftmaxCrossEntropy loss;

  std::vector<float> d_packed(packed.size(), kNaN), d_apart = pad_dlogits();
  const LossResult want = loss.compute(cpu(), packed.data(), targets.data(), rows, classes, classes,
                                       0.3f, d_packed.data());
  const LossResult got =
      loss.compute(cpu(), apart.data(), targets.data(), rows, classes, ld, 0.3f, d_apart.data());
  EXPECT_EQ(std::memcmp(&got.loss_sum, &want.loss_sum, sizeof(double)), 0);
  EXPECT_EQ(got.count, rows - 1);
  EXPECT_EQ(got.correct, want.correct);
  for (int r = 0; r < rows; ++r) {
    EXPECT_EQ(std::memcmp(d_apart.data() + r * ld, d_packed.data() + r * classes,
                          sizeof(float) * classes),
              0)
        << "row " << r;
    EXPECT_EQ(
        std::count(d_apart.begin() + r * ld + classes, d_apart.begin() + (r + 1) * ld, between),
        ld - classes)
        << "between rows " << r << " and " << r + 1;
  }

  // bf16 logits and gradients, through the twin: the gradient rows as the packed call's, and
  // the elements between the rows as they were.
  std::vector<uint16_t> b_packed(packed.size()), b_apart(apart.size());
  for (size_t i = 0; i < packed.size(); ++i) b_packed[i] = float_to_bf16(packed[i]);
  for (size_t i = 0; i < apart.size(); ++i) b_apart[i] = float_to_bf16(apart[i]);
  std::vector<uint16_t> db_packed(packed.size()), db_apart(apart.size());
  for (size_t i = 0; i < db_apart.size(); ++i)
    db_apart[i] = float_to_bf16(static_cast<int>(i % ld) < classes ? kNaN : between);
  const LossResult want_b =
      loss.compute(cpu(), ConstTensorRef(b_packed.data(), DataType::BF16), targets.data(), rows,
                   classes, classes, 0.3f, TensorRef(db_packed.data(), DataType::BF16));
  const LossResult got_b =
      loss.compute(cpu(), ConstTensorRef(b_apart.data(), DataType::BF16), targets.data(), rows,
                   classes, ld, 0.3f, TensorRef(db_apart.data(), DataType::BF16));
  EXPECT_EQ(std::memcmp(&got_b.loss_sum, &want_b.loss_sum, sizeof(double)), 0);
  EXPECT_EQ(got_b.count, rows - 1);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < ld; ++c) {
      const uint16_t g = db_apart[static_cast<size_t>(r) * ld + c];
      if (c < classes)
        ASSERT_EQ(g, db_packed[static_cast<size_t>(r) * classes + c]) << r << ", " << c;
      else
        ASSERT_EQ(g, float_to_bf16(between)) << r << ", " << c;
    }

  // Rows closer together than their width: refused.
  testing::expect_input_error(
      [&] {
        loss.compute(cpu(), apart.data(), targets.data(), rows, classes, classes - 1, 0.3f,
                     nullptr);
      },
      "softmax_cross_entropy: rows of 50 classes ", "cannot lie 49 elements apart");
  EXPECT_THROW(cpu().softmax_cross_entropy(apart.data(), targets.data(), rows, classes, classes - 1,
                                           kIgnoreIndex, 0.3f, nullptr),
               SystemError);
}

TEST(SoftmaxCrossEntropyLoss, MadeByName) {
  const std::unique_ptr<Loss> loss = make_loss("softmax_cross_entropy");
  EXPECT_EQ(loss->name(), "softmax_cross_entropy");
  const auto* ce = dynamic_cast<const SoftmaxCrossEntropy*>(loss.get());
  ASSERT_NE(ce, nullptr);
  EXPECT_EQ(ce->ignore_index(), -100);
  const std::unique_ptr<Loss> zero_ignored = make_loss("softmax_cross_entropy", 0);
  const auto* other = dynamic_cast<const SoftmaxCrossEntropy*>(zero_ignored.get());
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->ignore_index(), 0);
  testing::expect_input_error([] { make_loss("mse"); }, "unknown loss 'mse'",
                              "(known: softmax_cross_entropy)");
}

}  // namespace
}  // namespace dpt
