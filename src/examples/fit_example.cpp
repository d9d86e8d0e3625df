// The library's API in one page: train a small CNN on Fashion-MNIST on every rank of the job.
//   mpirun -np 2 build/fit_example [data folder] [max steps] [seed of the initial weights]
#include <cstdio>
#include <string>

#include "comm/communicator.hpp"
#include "kernels/backend.hpp"
#include "src/data/dataset.hpp"
#include "src/train/model.hpp"

int main(int argc, char** argv) {
  dpt::MpiSession mpi(&argc, &argv);
  const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  const int64_t max_steps = argc > 2 ? std::stoll(argv[2]) : -1;
  const uint64_t seed = argc > 3 ? std::stoull(argv[3]) : 1;
  try {
    auto comm = dpt::make_mpi_communicator();
    auto backend = dpt::make_cpu_backend(/*threads=*/1);

    dpt::Dataset train =
        dpt::load_dataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
    dpt::Dataset test =
        dpt::load_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");

    dpt::Model model({*comm, *backend}, "conv2d(8,3,pad=1) relu maxpool2d(2) flatten linear(10)",
                     {1, 28, 28}, seed);
    model.compile({.name = "adamw", .lr = 1e-3f});

    dpt::FitOptions options;
    options.schedule.epochs = 1;
    options.schedule.batch_size = 32;
    options.schedule.max_steps = max_steps;
    model.fit(train, options);

    const dpt::EvalResult r = model.evaluate(test);
    if (comm->rank() == 0)
      std::printf("test_accuracy=%.4f test_loss=%.4f on %lld samples\n", r.accuracy, r.loss,
                  static_cast<long long>(r.count));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fit_example: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
