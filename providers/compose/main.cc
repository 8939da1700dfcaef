// prevue's `compose` provider executable (docs/providers.md#the-compose-provider).
#include "compose_provider.h"
#include "provider_main.h"

int main(int argc, char** argv) { return prevue::run_provider(argc, argv, prevue::compose::handle); }
