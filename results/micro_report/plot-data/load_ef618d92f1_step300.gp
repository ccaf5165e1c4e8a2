# load_ef618d92f1_step300.svg, written by `moebench report` (suite/plot.cpp).
# Rerun from the report folder: gnuplot plot-data/load_ef618d92f1_step300.gp
set encoding utf8
set terminal svg size 640,400 font 'sans-serif,12' noenhanced background '#ffffff'
set output 'load_ef618d92f1_step300.svg'
set datafile separator tab
set border 3 lc rgb '#333333'
set tics nomirror textcolor rgb '#333333'
set title 'aoe micro seed 42, step 300'
set xlabel 'expert'
set ylabel 'layer'
set xrange [-0.5:7.5]
set yrange [-0.5:3.5]
set xtics 1 out
set ytics 1 out
set border 15 lc rgb '#333333'
set key off
set palette defined (0 '#440154', 1 '#46327e', 2 '#365c8d', 3 '#277f8e', 4 '#1fa187', 5 '#4ac16d', 6 '#a0da39', 7 '#fde725')
set cbrange [0:1]
set cblabel 'load (fraction of tokens)'
set datafile missing 'NaN'
plot 'plot-data/load_ef618d92f1_step300.matrix.tsv' matrix with image pixels notitle, \
     'plot-data/load_ef618d92f1_step300.matrix.tsv' matrix using 1:2:(sprintf('%.2f', $3)):($3 > 0.5 ? 0 : 16777215) with labels tc rgb variable font ',10' notitle
unset output
