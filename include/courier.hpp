// courier: actors on Asio. Include this one header for the whole library
// (courier/testing.hpp, for tests, is included on its own).
#pragma once

#include "courier/actor.hpp"
#include "courier/actor_executor.hpp"
#include "courier/errors.hpp"
#include "courier/future.hpp"
#include "courier/result.hpp"
#include "courier/spawn_options.hpp"
#include "courier/steady_timer.hpp"
#include "courier/supervision.hpp"
#include "courier/thread_pool.hpp"
#include "courier/timer.hpp"
