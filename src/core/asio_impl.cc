// The single translation unit that compiles Boost.Asio's and Boost.Process
// v2's implementations (separate compilation keeps the other files lean).
// Boost.Process v2 in 1.81 with std::filesystem misses these two includes.
#include <boost/optional.hpp>
#include <boost/type_traits.hpp>

#include <boost/asio/impl/src.hpp>
#include <boost/process/v2/src.hpp>
