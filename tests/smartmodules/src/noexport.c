/* a module with alloc and memory but no SmartModule export Fluvio knows. */
#include "sm.h"

EXPORT("transform") i32 transform(i32 ptr, i32 len, i32 version) { copy_records(ptr, len); return version; }
