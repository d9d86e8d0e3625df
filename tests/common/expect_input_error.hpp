// A check shared by the reader tests: a call must fail with one clean line of InputError.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <source_location>
#include <string>

#include "src/core/error.hpp"

namespace dpt::testing {

// Runs fn, which must throw InputError whose one-line message starts with path and has phrase.
inline void expect_input_error(const std::function<void()>& fn, const std::string& path,
                               const std::string& phrase,
                               std::source_location loc = std::source_location::current()) {
  ::testing::ScopedTrace trace(loc.file_name(), static_cast<int>(loc.line()), phrase);
  std::string msg;
  EXPECT_THROW(
      {
        try {
          fn();
        } catch (const InputError& e) {
          msg = e.what();
          throw;
        }
      },
      InputError);
  EXPECT_EQ(msg.rfind(path, 0), 0u) << msg;
  EXPECT_NE(msg.find(phrase), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace dpt::testing
