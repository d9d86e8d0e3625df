// Stopping on a signal: which signal a rank reports, the exit code it leads to, and a second
// Ctrl-C that ends the process at once. Each case runs in a child process (a death test), since
// the handlers and what they noted last for the life of a process.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>

#include "src/train/stop_signals.hpp"
#include "tests/common/one_rank_communicator.hpp"

namespace dpt {
namespace {

TEST(StopSignals, ExitCodes) {
  EXPECT_EQ(stop_exit_code(SIGTERM), 143);
  EXPECT_EQ(stop_exit_code(SIGINT), 130);
  EXPECT_EQ(stop_exit_code(SIGUSR1), 75) << "EX_TEMPFAIL, so that a batch script requeues";
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
  EXPECT_EQ(signal_name(SIGUSR1), "SIGUSR1");
}

// Exits with 0 when `check` holds in the child, else 1.
#define EXPECT_IN_CHILD(check) \
  EXPECT_EXIT(std::exit((check) ? 0 : 1), ::testing::ExitedWithCode(0), "")

TEST(StopSignalsDeathTest, ASignalIsNotedNotObeyed) {
  EXPECT_IN_CHILD((install_stop_signals(), stop_signal() == 0));
  EXPECT_IN_CHILD((install_stop_signals(), std::raise(SIGTERM), stop_signal() == SIGTERM));
  EXPECT_IN_CHILD((install_stop_signals(), std::raise(SIGUSR1), stop_signal() == SIGUSR1));
  EXPECT_IN_CHILD((install_stop_signals(), std::raise(SIGINT), stop_signal() == SIGINT));
}

TEST(StopSignalsDeathTest, AnEndOutranksAWarning) {
  EXPECT_IN_CHILD(
      (install_stop_signals(), std::raise(SIGUSR1), std::raise(SIGINT), stop_signal() == SIGINT));
  EXPECT_IN_CHILD((install_stop_signals(), std::raise(SIGTERM), std::raise(SIGUSR1),
                   std::raise(SIGINT), stop_signal() == SIGTERM));
  // SIGTERM may come twice (a launcher and a scheduler both send it): still only noted.
  EXPECT_IN_CHILD(
      (install_stop_signals(), std::raise(SIGTERM), std::raise(SIGTERM), stop_signal() == SIGTERM));
}

TEST(StopSignalsDeathTest, TheRanksAgreeOnTheSignal) {
  testing::OneRankCommunicator comm;
  EXPECT_IN_CHILD((install_stop_signals(), agreed_stop_signal(comm) == 0));
  EXPECT_IN_CHILD((install_stop_signals(), std::raise(SIGINT), agreed_stop_signal(comm) == SIGINT));
}

TEST(StopSignalsDeathTest, ASecondCtrlCEndsTheProcessAtOnce) {
  EXPECT_EXIT((install_stop_signals(), std::raise(SIGINT), std::raise(SIGINT), std::exit(0)),
              ::testing::KilledBySignal(SIGINT), "");
}

}  // namespace
}  // namespace dpt
