#include "http_probe.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace prevue {

int http_status(const Endpoint& endpoint, const std::string& path, int timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(endpoint.host.c_str(), std::to_string(endpoint.port).c_str(), &hints, &found) != 0 || !found) return 0;
  int status = 0;
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  auto wait_for = [&](short events) {
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && !(p.revents & (POLLERR | POLLNVAL));
  };
  if (fd >= 0 && (::connect(fd, found->ai_addr, found->ai_addrlen) == 0 || (errno == EINPROGRESS && wait_for(POLLOUT)))) {
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + endpoint.text() + "\r\nUser-Agent: prevue-health\r\nConnection: close\r\n\r\n";
    if (so_error == 0 && ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      std::string reply;
      char buf[512];
      while (reply.find("\r\n") == std::string::npos && reply.size() < 4096 && wait_for(POLLIN)) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        reply.append(buf, static_cast<size_t>(n));
      }
      if (reply.rfind("HTTP/1.", 0) == 0 && reply.size() >= 12) status = std::atoi(reply.c_str() + 9);
    }
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  return status;
}

}  // namespace prevue
