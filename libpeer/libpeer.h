/* libpeer.h: the one header applications include. */
#pragma once

#define LIBPEER_INSIDE
#include "peer-types.h"
#include "peer-error.h"
#include "peer-policy.h"
#include "peer-blob.h"
#include "peer-call.h"
#include "peer-interface.h"
#include "peer-gobject-export.h"
#include "peer-subtree.h"
#include "peer-connection.h"
#include "peer-server.h"
#include "peer-server-objects.h"
#include "peer-client.h"
#include "peer-helper.h"
#include "peer-sandbox.h"
#undef LIBPEER_INSIDE
