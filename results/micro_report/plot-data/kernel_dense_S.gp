# kernel_dense_S.svg, written by `moebench report` (suite/plot.cpp).
# Rerun from the report folder: gnuplot plot-data/kernel_dense_S.gp
set encoding utf8
set terminal svg size 1240,360 font 'sans-serif,12' noenhanced background '#ffffff'
set output 'kernel_dense_S.svg'
set datafile separator tab
set border 3 lc rgb '#333333'
set tics nomirror textcolor rgb '#333333'
set title 'expert block speed to the dense chain, shape S (tokens=2048, density=0.25)'
set xlabel 'benchmark configuration' offset 0,-1
set ylabel 'speed / dense-chain speed'
set yrange [0:1.08]
set grid ytics lc rgb '#e3e3e3'
set key outside below horizontal center Left reverse
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border lc rgb '#333333'
set datafile missing 'NaN'
set xtics nomirror scale 0
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb '#555555' back
set xrange [-0.5:3.5]
plot 'plot-data/kernel_dense_S.tsv' using 2:xtic(1) lc rgb '#0072B2' title 'cpu', \
     '' using 3 lc rgb '#009E73' title 'naive', \
     '' using 4 lc rgb '#CC79A7' title 'reference', \
     NaN with lines dt 2 lw 1.5 lc rgb '#555555' title '1 = dense chain'
unset output
