// Exchange declaration options.
#pragma once

#include <string>

#include "warren/field_table.h"

namespace warren {

struct ExchangeOptions {
  bool passive = false;       // only check that it exists (404 if not)
  bool durable = false;       // survives a restart
  bool auto_delete = false;   // deleted when its last binding goes
  bool internal = false;      // cannot be published to directly, only bound to
  FieldTable arguments = {};  // e.g. "alternate-exchange"
};

struct ExchangeDeleteOptions {
  bool if_unused = false;  // refuse (406) while the exchange has bindings
};

}  // namespace warren
