# active_micro.svg, written by `moebench report` (suite/plot.cpp).
# Rerun from the report folder: gnuplot plot-data/active_micro.gp
set encoding utf8
set terminal svg size 640,400 font 'sans-serif,12' noenhanced background '#ffffff'
set output 'active_micro.svg'
set datafile separator tab
set border 3 lc rgb '#333333'
set tics nomirror textcolor rgb '#333333'
set title 'active experts per token (micro)'
set xlabel 'statistic of the per-token count (last evaluation)'
set ylabel 'active experts per token'
set yrange [0:8.64]
set grid ytics lc rgb '#e3e3e3'
set key outside below horizontal center Left reverse
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border lc rgb '#333333'
set datafile missing 'NaN'
set xtics nomirror scale 0
set xrange [-0.5:3.5]
plot 'plot-data/active_micro.tsv' using 2:xtic(1) lc rgb '#E69F00' title 'aoe (3 seeds)', \
     '' using 3 lc rgb '#009E73' title 'remoe (3 seeds)', \
     '' using 4 lc rgb '#D55E00' title 'routing_free (model.init=published; 3 seeds)', \
     '' using 5 lc rgb '#D55E00' title 'routing_free (model.init=normal)', \
     '' using 6 lc rgb '#CC79A7' title 'self_routing (3 seeds)', \
     '' using 7 lc rgb '#56B4E9' title 'switch (3 seeds)', \
     '' using 8 lc rgb '#0072B2' title 'topk (3 seeds)'
unset output
