// Queue and exchange argument checks on redeclare, with RabbitMQ's texts.
#pragma once

#include <string>
#include <string_view>

#include "core/errors.h"
#include "warren/field_table.h"

namespace warren::core {

// RabbitMQ's name for a value's type in "inequivalent arg" texts ("signedint", "longstr").
std::string_view rabbit_type_name(const FieldValue& v);
// "the value '10' of type 'signedint'", or "none".
std::string describe_arg(const FieldValue* v);
bool same_arg_value(const FieldValue* a, const FieldValue* b);

class Queue;

// Checks a new queue's arguments (406 with RabbitMQ's "invalid arg" text) and applies them.
Status apply_queue_arguments(Queue& queue, const FieldTable& args);

// Compares the arguments a classic queue knows; others are ignored, as RabbitMQ does.
Status check_queue_args_equivalent(const FieldTable& current, const FieldTable& received,
                                   std::string_view queue, std::string_view vhost);

}  // namespace warren::core
