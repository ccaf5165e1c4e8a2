// Anchor translation unit for the shared torch precompiled header (see CMakeLists.txt).
#include "suite/pch.h"
