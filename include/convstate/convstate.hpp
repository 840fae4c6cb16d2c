#pragma once
/** @file convstate.hpp Umbrella header: stateless conversation handling for chat servers. */

#include "convstate/archive.hpp"
#include "convstate/chat_orchestrator.hpp"
#include "convstate/conversation_store.hpp"
#include "convstate/database.hpp"
#include "convstate/error.hpp"
#include "convstate/history_window.hpp"
#include "convstate/json.hpp"
#include "convstate/message_repository.hpp"
#include "convstate/types.hpp"
#include "convstate/version.hpp"
