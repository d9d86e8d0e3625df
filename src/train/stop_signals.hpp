// Stopping on a signal. A scheduler's warning (SIGUSR1), a polite kill (SIGTERM) or Ctrl-C
// (SIGINT) asks training to stop: every rank finishes its step, a checkpoint is written, and the
// job exits with 75 (EX_TEMPFAIL) after SIGUSR1, so that a batch script requeues it, and with
// 128 + the signal number after SIGTERM (143) or SIGINT (130), as a process killed by it would.
// A second SIGINT ends the process at once, without a checkpoint.
//
// Under Open MPI 4's mpirun a SIGTERM or SIGINT to mpirun itself reaches the ranks as SIGTERM,
// one odls_base_sigkill_timeout (1 s by default) after mpirun got it and one before mpirun kills
// them; mpirun then exits with 1 whatever the ranks return. srun, scancel and a signal sent to
// the ranks themselves give the ranks' own exit code.
#pragma once

#include <string>

#include "comm/communicator.hpp"

namespace dpt {

// Installs the handlers (they only note the signal). First thing in main, so that a signal
// during start-up is not lost.
void install_stop_signals();
// Gives the three signals their default action (the process ends) again, for a command that
// never looks at stop_signal() (generate, bench, prepare-text, info): one noted already is
// raised now, so that nothing the handlers took in is lost.
void restore_default_signals();
// The signal that asked this rank to stop, 0 when none did. When several arrived, SIGTERM ranks
// above SIGINT, and SIGINT above SIGUSR1: an end asked for outranks a warning.
int stop_signal();
// Collective: the highest-ranking stop signal over all ranks (a signal may reach only some).
int agreed_stop_signal(Communicator& comm);
// "SIGTERM", "SIGINT", "SIGUSR1".
std::string signal_name(int sig);
// The exit code of a job stopped by `sig`: 75 after SIGUSR1, 128 + sig otherwise.
int stop_exit_code(int sig);

}  // namespace dpt
