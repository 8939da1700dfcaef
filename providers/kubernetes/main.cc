// prevue's `kubernetes` provider executable (docs/providers.md#the-kubernetes-provider).
#include "kubernetes_provider.h"
#include "provider_main.h"

int main(int argc, char** argv) { return prevue::run_provider(argc, argv, prevue::kubernetes::handle); }
