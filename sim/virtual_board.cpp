// The virtual board's main loop: a Verilator model of a board top, its byte link served on a local TCP socket.
//
// The top has `clk` (its reset comes from a power-on counter in the model, VBOARD_RESET_CYCLES cycles long) and
// either byte streams behind the PHY (fast mode: `rx__valid/ready/payload` into the device, `tx__valid/ready/payload`
// out of it; Verilator spells `__` as `___05F` in C++) or, built with -DVBOARD_UART=<clocks per bit>, the UART pins
// `uart_rx` (in) and `uart_tx` (out), 8N1, which this loop drives and samples bit by bit. An optional `idle` output
// lets the loop sleep in poll() while the device has nothing to do and no byte is waiting.
//
// Built with -DVBOARD_SAIF (Verilator's --trace-saif) or -DVBOARD_VCD (--trace-vcd), --dump PATH writes the session
// as a SAIF (the switching activity of every net, for the power estimate, mmfree.host.power) or a VCD waveform, one
// time unit per cycle. A top with `trace_valid`/`trace_pc` outputs (built with -DVBOARD_HAS_TRACE): --trace PATH
// writes "<cycle> <pc>" for every cycle with trace_valid, the instructions the core starts.
//
// Arguments: --port N (0: any free port), --max-cycles N (0: unbounded). The loop prints "PORT <n>" once it
// listens, serves one connection, and when the peer closes prints "CYCLES <n> SECONDS <s> IDLE <s>" (cycles after
// reset; wall seconds from connection to close, and those of them spent asleep while idle) and exits. No Python
// runs per cycle; the socket is polled every POLL_EVERY cycles while the device works.

#include <arpa/inet.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#if defined(VBOARD_SAIF)
#include "verilated_saif_c.h"
typedef VerilatedSaifC Dump;
#elif defined(VBOARD_VCD)
#include "verilated_vcd_c.h"
typedef VerilatedVcdC Dump;
#endif

static const uint64_t POLL_EVERY = 4096;

#ifdef VBOARD_UART
// 8N1 transmitter into the device's RX pin and receiver on its TX pin, VBOARD_UART clocks per bit.
struct UartDriver {
    int bit = -1;            // -1 idle, 0 start, 1..8 data, 9 stop
    uint32_t count = 0;
    uint8_t byte = 0;
    bool next(std::deque<uint8_t> &queue) {  // the line level for this cycle
        if (bit < 0) {
            if (queue.empty()) return true;
            byte = queue.front();
            queue.pop_front();
            bit = 0;
            count = 0;
        }
        bool level = bit == 0 ? false : bit <= 8 ? ((byte >> (bit - 1)) & 1) : true;
        if (++count == VBOARD_UART) {
            count = 0;
            if (++bit == 10) bit = -1;
        }
        return level;
    }
};
struct UartReceiver {
    int bit = -1;
    uint32_t count = 0;
    uint8_t byte = 0;
    void sample(bool level, std::vector<uint8_t> &out) {
        if (bit < 0) {
            if (!level) { bit = 0; count = VBOARD_UART / 2; }
            return;
        }
        if (--count) return;
        count = VBOARD_UART;
        if (bit == 0) {
            if (level) bit = -1;  // a glitch, not a start bit
            else bit = 1;
        } else if (bit <= 8) {
            byte = (byte >> 1) | (level ? 0x80 : 0);
            bit++;
        } else {
            if (level) out.push_back(byte);  // a stop bit low is a framing error: dropped
            bit = -1;
        }
    }
};
#endif

int main(int argc, char **argv) {
    int port = 0;
    uint64_t max_cycles = 0;
    const char *dump_path = nullptr, *trace_path = nullptr;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-cycles")) max_cycles = strtoull(argv[++i], nullptr, 10);
        else if (!strcmp(argv[i], "--dump")) dump_path = argv[++i];
        else if (!strcmp(argv[i], "--trace")) trace_path = argv[++i];
    }
    Verilated::commandArgs(argc, argv);
#if defined(VBOARD_SAIF) || defined(VBOARD_VCD)
    Verilated::traceEverOn(true);
#else
    if (dump_path) {
        fprintf(stderr, "virtual board: built without a dump format, cannot write %s\n", dump_path);
        return 2;
    }
#endif
#ifdef VBOARD_HAS_TRACE
    FILE *trace = trace_path ? fopen(trace_path, "w") : nullptr;
    if (trace_path && !trace) {
        perror("virtual board: --trace");
        return 2;
    }
#else
    if (trace_path) {
        fprintf(stderr, "virtual board: the top has no trace outputs, cannot write %s\n", trace_path);
        return 2;
    }
#endif

    int server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    socklen_t length = sizeof address;
    if (bind(server, (sockaddr *)&address, sizeof address) || listen(server, 1) ||
        getsockname(server, (sockaddr *)&address, &length)) {
        perror("virtual board: socket");
        return 2;
    }
    printf("PORT %d\n", ntohs(address.sin_port));
    fflush(stdout);
    int client = accept(server, nullptr, nullptr);
    if (client < 0) {
        perror("virtual board: accept");
        return 2;
    }
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    Vtop *top = new Vtop;
    std::deque<uint8_t> to_device;
    std::vector<uint8_t> from_device;
#ifdef VBOARD_UART
    UartDriver driver;
    UartReceiver receiver;
    top->uart_rx = 1;
#endif
    for (int i = 0; i < VBOARD_RESET_CYCLES; i++) {
        top->clk = 0; top->eval();
        top->clk = 1; top->eval();
    }
#if defined(VBOARD_SAIF) || defined(VBOARD_VCD)
    Dump *dump = nullptr;
    if (dump_path) {
        dump = new Dump;
        top->trace(dump, 99);
        dump->open(dump_path);
    }
#endif

    auto start = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration idle{};
    uint64_t cycle = 0;
    bool open = true;
    uint8_t buffer[65536];
    while (open && (!max_cycles || cycle < max_cycles)) {
#ifdef VBOARD_UART
        top->uart_rx = driver.next(to_device);
        top->clk = 0; top->eval();
        top->clk = 1; top->eval();
        receiver.sample(top->uart_tx, from_device);
        bool waiting = driver.bit >= 0 || receiver.bit >= 0;
#else
        bool offer = !to_device.empty();
        top->rx___05Fvalid = offer;
        if (offer) top->rx___05Fpayload = to_device.front();
        top->tx___05Fready = 1;
        top->clk = 0; top->eval();
        bool taken = offer && top->rx___05Fready;
        bool sent = top->tx___05Fvalid;
        uint8_t sent_byte = top->tx___05Fpayload;
        top->clk = 1; top->eval();
        if (taken) to_device.pop_front();
        if (sent) from_device.push_back(sent_byte);
        bool waiting = false;
#endif
        cycle++;
#if defined(VBOARD_SAIF) || defined(VBOARD_VCD)
        if (dump) dump->dump(cycle);
#endif
#ifdef VBOARD_HAS_TRACE
        if (trace && top->trace_valid) fprintf(trace, "%llu %u\n", (unsigned long long)cycle, (unsigned)top->trace_pc);
#endif
#ifdef VBOARD_HAS_IDLE
        bool quiet = top->idle && to_device.empty() && from_device.empty() && !waiting;
#else
        bool quiet = false;
        (void)waiting;
#endif
        if (cycle % POLL_EVERY && !quiet) continue;
        pollfd fd{client, (short)(POLLIN | (from_device.empty() ? 0 : POLLOUT)), 0};
        int ready;
        if (quiet) {
            auto asleep = std::chrono::steady_clock::now();
            ready = poll(&fd, 1, 20);
            idle += std::chrono::steady_clock::now() - asleep;
        } else {
            ready = poll(&fd, 1, 0);
        }
        if (ready > 0) {
            if (fd.revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(client, buffer, sizeof buffer);
                if (n <= 0) open = false;
                else to_device.insert(to_device.end(), buffer, buffer + n);
            }
            if (open && (fd.revents & POLLOUT)) {
                ssize_t n = write(client, from_device.data(), from_device.size());
                if (n > 0) from_device.erase(from_device.begin(), from_device.begin() + n);
            }
        }
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    printf("CYCLES %llu SECONDS %.6f IDLE %.6f\n", (unsigned long long)cycle, seconds,
           std::chrono::duration<double>(idle).count());
    fflush(stdout);
#if defined(VBOARD_SAIF) || defined(VBOARD_VCD)
    if (dump) dump->close();
#endif
#ifdef VBOARD_HAS_TRACE
    if (trace) fclose(trace);
#endif
    top->final();
    delete top;
    close(client);
    close(server);
    return 0;
}
