# Prints the stack of every allocation the benchmark counts (its counted round), for tools/summarise-stacks.py.
#   gdb -q -batch -x Benchmarks/tools/allocation-sites.gdb --args Benchmarks/.build/release/bench-pool \
#       --rounds 1 --scale 0.02 --scenario c64_r8 --only reservoir_all > /tmp/sites.txt 2>&1
#   python3 Benchmarks/tools/summarise-stacks.py /tmp/sites.txt
set pagination off
set print thread-events off
set breakpoint pending on
break reservoir_malloc_counter_counted
commands
silent
bt 14
continue
end
run
quit
