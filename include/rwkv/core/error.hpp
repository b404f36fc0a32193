#pragma once
// The one exception type of the library. Every message names what it can of: the file, the tensor and
// the problem, so that a user holding a bad checkpoint knows which file and which tensor to look at.

#include <stdexcept>
#include <string>
#include <utility>

namespace rwkv {

class error : public std::runtime_error {
 public:
  explicit error(std::string problem, std::string file = {}, std::string tensor = {})
      : std::runtime_error(format(problem, file, tensor)),
        problem_(std::move(problem)),
        file_(std::move(file)),
        tensor_(std::move(tensor)) {}

  const std::string& problem() const noexcept { return problem_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }

 private:
  static std::string format(const std::string& problem, const std::string& file, const std::string& tensor) {
    std::string msg = "rwkv: ";
    if (!file.empty()) msg += file + ": ";
    if (!tensor.empty()) msg += "tensor '" + tensor + "': ";
    return msg + problem;
  }

  std::string problem_, file_, tensor_;
};

}  // namespace rwkv
