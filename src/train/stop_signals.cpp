#include "src/train/stop_signals.hpp"

#include <atomic>
#include <csignal>

namespace dpt {
namespace {

constexpr int kExitRequeue = 75;  // EX_TEMPFAIL: stopped after a checkpoint, to be requeued

// Lock-free, so that the handler may write them (a handler may touch nothing else).
std::atomic<int> requested{0};
std::atomic<int> interrupts{0};
static_assert(std::atomic<int>::is_always_lock_free);

int rank_of(int sig) {
  switch (sig) {
    case SIGUSR1:
      return 1;
    case SIGINT:
      return 2;
    case SIGTERM:
      return 3;
    default:
      return 0;
  }
}

int signal_of_rank(int rank) {
  constexpr int by_rank[] = {0, SIGUSR1, SIGINT, SIGTERM};
  return rank >= 0 && rank <= 3 ? by_rank[rank] : 0;
}

extern "C" void on_stop_signal(int sig) {
  // A second Ctrl-C ends the process at once, as if there were no handler: the way out of a
  // long start-up or a hang. (Launchers may send SIGTERM more than once, so it gets no such
  // rule; they follow it with SIGKILL anyway.) The SIGINT raised here stays blocked until the
  // handler returns, and then takes its default action.
  if (sig == SIGINT && interrupts.fetch_add(1) > 0) {
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  // Only this handler writes `requested`, and signals do not nest here (sa_mask blocks the
  // others while it runs), so a load and a store suffice.
  if (rank_of(sig) > rank_of(requested.load())) requested.store(sig);
}

}  // namespace

void install_stop_signals() {
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGUSR1, SIGINT, SIGTERM}) sigaddset(&action.sa_mask, sig);
  // Interrupted reads and writes resume: a signal only sets the flag.
  action.sa_flags = SA_RESTART;
  for (int sig : {SIGUSR1, SIGINT, SIGTERM}) sigaction(sig, &action, nullptr);
}

void restore_default_signals() {
  for (int sig : {SIGUSR1, SIGINT, SIGTERM}) signal(sig, SIG_DFL);
  if (const int sig = requested.load()) raise(sig);
}

int stop_signal() { return requested.load(); }

int agreed_stop_signal(Communicator& comm) {
  int64_t rank = rank_of(stop_signal());
  comm.allreduce(&rank, 1, DataType::I64, ReduceOp::Max);
  return signal_of_rank(static_cast<int>(rank));
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGUSR1:
      return "SIGUSR1";
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(sig);
  }
}

int stop_exit_code(int sig) { return sig == SIGUSR1 ? kExitRequeue : 128 + sig; }

}  // namespace dpt
