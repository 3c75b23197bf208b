// Format fixture for tests/test_power.py, written by hand in the style Yosys writes Amaranth's designs: a counter,
// a block-RAM model, a multiplier model (Mac16-like) and a 16K x 16 single-port RAM model.
module top(clk, rst, uart_tx);
  input clk;
  input rst;
  output uart_tx;
  reg [3:0] count = 4'h0;
  wire [3:0] \$1 ;
  wire [3:0] alias;
  wire [15:0] product;
  wire [7:0] r_data;
  assign \$1  = count + 4'h1;
  assign alias = count;
  assign uart_tx = count[3];
  always @(posedge clk)
    count <= \$1 ;
  \top.mem  mem (
    .clk(clk),
    .r_data(r_data),
    .r_en(count[0])
  );
  \top.mac  mac (
    .\a$4 (count),
    .clk(clk),
    .product(product)
  );
  \top.bank  bank (
    .clk(clk),
    .cs(count[1])
  );
endmodule

module \top.mem (clk, r_en, r_data);
  input clk;
  input r_en;
  output [7:0] r_data;
  reg [7:0] r_data;
  wire [8:0] read__addr;
  wire write__en;
  reg [7:0] mem [511:0];
  always @(posedge clk)
    r_data <= mem[read__addr];
endmodule

module \top.mac (clk, \a$4 , product);
  input clk;
  input [3:0] \a$4 ;
  output [15:0] product;
  reg [15:0] product;
  reg [3:0] a;
  wire [15:0] \$1 ;
  assign \$1  = a * a;
  always @(posedge clk)
    a <= \a$4 ;
  always @(posedge clk)
    product <= \$1 ;
endmodule

module \top.bank (clk, cs);
  input clk;
  input cs;
  reg [15:0] data;
  reg [15:0] mem [16383:0];
  always @(posedge clk)
    data <= mem[0];
endmodule
