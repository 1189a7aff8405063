// RabbitMQ's error texts, written once. Each returns the Status a client would see.
#pragma once

#include <cstdint>
#include <string_view>

#include "warren/status.h"

namespace warren::core {

// AMQP class and method ids, to attribute an error to the method that caused it.
namespace method {
inline constexpr std::pair<uint16_t, uint16_t> exchange_declare{40, 10}, exchange_delete{40, 20},
    exchange_bind{40, 30}, exchange_unbind{40, 40}, queue_declare{50, 10}, queue_bind{50, 20},
    queue_purge{50, 30}, queue_delete{50, 40}, queue_unbind{50, 50}, basic_qos{60, 10},
    basic_consume{60, 20}, basic_cancel{60, 30}, basic_publish{60, 40}, basic_get{60, 70},
    basic_ack{60, 80}, basic_reject{60, 90}, basic_recover{60, 110}, basic_nack{60, 120},
    confirm_select{85, 10}, tx_select{90, 10}, tx_commit{90, 20}, tx_rollback{90, 30}, none{0, 0};
}
using MethodId = std::pair<uint16_t, uint16_t>;

Status error(ReplyCode code, std::string_view detail, MethodId m);

// "queue 'q' in vhost '/'"
std::string resource(std::string_view kind, std::string_view name, std::string_view vhost);

Status no_queue(std::string_view vhost, std::string_view queue, MethodId m);
Status no_exchange(std::string_view vhost, std::string_view exchange, MethodId m);
Status unknown_delivery_tag(uint64_t tag, MethodId m);
Status queue_locked(std::string_view vhost, std::string_view queue, MethodId m);
Status inequivalent_arg(std::string_view arg, std::string_view kind, std::string_view name,
                        std::string_view vhost, std::string_view received, std::string_view current,
                        MethodId m);

}  // namespace warren::core
