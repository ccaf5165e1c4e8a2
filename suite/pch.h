// Precompiled header for every translation unit that uses LibTorch.
// Keep it to heavy, stable headers: a change here rebuilds everything.
#pragma once
#include <torch/torch.h>
