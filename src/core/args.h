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

// Compares the arguments a classic queue knows; others are ignored, as RabbitMQ does.
Status check_queue_args_equivalent(const FieldTable& current, const FieldTable& received,
                                   std::string_view queue, std::string_view vhost);

}  // namespace warren::core
