// A compiler check run at configure time (cmake/CompilerChecks.cmake).
// GCC 12.2 miscompiles a temporary std::string made by ?: inside the
// arguments of a co_await'ed call: the string is freed with a wild pointer.
// prevue's proxy and API are coroutines full of such expressions, so a
// compiler that fails this check is refused for the whole build.
#include <coroutine>
#include <cstdlib>
#include <string>

namespace {

struct Task {
  struct promise_type {
    Task get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::abort(); }
  };
};

struct ReadyAwaiter {
  bool await_ready() { return true; }
  void await_suspend(std::coroutine_handle<>) {}
  int await_resume() { return 0; }
};

std::size_t total = 0;
ReadyAwaiter send(int status, std::string body) {
  total += static_cast<std::size_t>(status) + body.size();
  return {};
}
std::string join(const std::string& a, const std::string& b) { return a + b; }

Task answer(std::string detail) {
  for (int i = 0; i < 2; ++i)
    co_await send(503, join("Preview is being built", "<p>reloads</p>" + (detail.empty() ? std::string() : "<p>" + detail + "</p>")));
}

}  // namespace

int main() {
  const std::string detail = "a detail long enough to live on the heap, not in the small buffer";
  answer("");
  answer(detail);
  const std::size_t page = std::string("Preview is being built<p>reloads</p>").size();
  const std::size_t expected = 2 * (503 + page) + 2 * (503 + page + 7 + detail.size());
  return total == expected ? 0 : 1;
}
