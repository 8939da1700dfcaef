// Expected failures as values: a code plus a message a user can act on.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace prevue {

enum class ErrorCode {
  kInvalidArgument,
  kNotFound,
  kParse,
  kIo,
  kGit,
  kProvider,
  kTimeout,
  kConflict,
  kCancelled,  // superseded (a newer commit) before it finished
  kInternal,
};

const char* to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

inline Error make_error(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<Error>(state_); }
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

// Propagates an error from an expression yielding Result/Status.
#define PREVUE_TRY(expr)                              \
  do {                                                \
    auto prevue_try_result_ = (expr);                 \
    if (!prevue_try_result_.ok()) return prevue_try_result_.error(); \
  } while (0)

// `lhs = *expr` for an expression yielding Result, else returns its error.
// Several statements: inside an `if`, put it in braces.
#define PREVUE_ASSIGN_OR_RETURN(lhs, expr) PREVUE_ASSIGN_OR_RETURN_(PREVUE_CONCAT_(prevue_assign_, __LINE__), lhs, expr)
#define PREVUE_ASSIGN_OR_RETURN_(result, lhs, expr) \
  auto result = (expr);                             \
  if (!result.ok()) return result.error();          \
  lhs = std::move(result).value()
#define PREVUE_CONCAT_(a, b) PREVUE_CONCAT_INNER_(a, b)
#define PREVUE_CONCAT_INNER_(a, b) a##b

}  // namespace prevue
