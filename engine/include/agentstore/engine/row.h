// Moved: records are common to engine and client.
#pragma once
#include "agentstore/common/row.h"
