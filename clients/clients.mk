# The C clients (included by the Makefile): the client library, elboctl and the example robots.
#
# They use only elbod's public REST API: libcurl, Jansson and libm, never core/ or server/.
#
# build/elboctl          the command-line client (elboctl --help)
# build/robot_pendulum   the pendulum swing-up robot (README.md, Clients > Example robots)
# build/robot_cartpole   the cart-pole swing-up robot

CLIENT_LIB_OBJS := $(BUILD)/clients/c/elbo_client.o
CLIENT_LIBS = $(shell pkg-config --libs libcurl jansson 2>/dev/null) -lm
ELBOCTL_BIN := $(BUILD)/elboctl
ROBOT_BINS := $(BUILD)/robot_pendulum $(BUILD)/robot_cartpole
CLIENT_BINS := $(ELBOCTL_BIN) $(ROBOT_BINS)

.PHONY: clients

clients: $(CLIENT_BINS)

# Part of the default build and of the test run (tests/check_clients.c drives them). These lines
# add prerequisites here because the Makefile reads this file after its own rules.
all: $(CLIENT_BINS)
test-unit: $(CLIENT_BINS)

$(ELBOCTL_BIN): $(BUILD)/clients/c/elboctl.o $(CLIENT_LIB_OBJS)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(CLIENT_LIBS) $(LDLIBS)

$(ROBOT_BINS): $(BUILD)/robot_%: $(BUILD)/clients/c/robot_%.o $(BUILD)/clients/c/robot.o $(CLIENT_LIB_OBJS)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(CLIENT_LIBS) $(LDLIBS)

-include $(BUILD)/clients/c/elbo_client.d $(BUILD)/clients/c/elboctl.d $(BUILD)/clients/c/robot.d \
	$(BUILD)/clients/c/robot_pendulum.d $(BUILD)/clients/c/robot_cartpole.d
