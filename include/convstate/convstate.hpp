#pragma once
/** @file convstate.hpp Umbrella header: stateless conversation handling for chat servers. */

#include "convstate/conversation_store.hpp"
#include "convstate/database.hpp"
#include "convstate/error.hpp"
#include "convstate/json.hpp"
#include "convstate/message_repository.hpp"
#include "convstate/types.hpp"
#include "convstate/version.hpp"
