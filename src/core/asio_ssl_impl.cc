// The single translation unit that compiles Asio's SSL implementation, for
// the proxy's HTTPS listener and the git hosts' API client alike.
#include <boost/asio/ssl/impl/src.hpp>
